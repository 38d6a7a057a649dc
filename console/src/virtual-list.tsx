/**
 * A list of fixed-height rows that renders only the rows in view (a few dozen DOM nodes for 10,000
 * events). With `follow`, it stays scrolled to the end while new rows arrive, until the user scrolls up.
 */
import type { ComponentChildren } from "preact";
import { useLayoutEffect, useRef, useState } from "preact/hooks";

export interface VirtualListProps {
  count: number;
  rowHeight: number;
  height: number;
  follow: boolean;
  row: (index: number) => ComponentChildren;
  class?: string;
}

export function VirtualList({ count, rowHeight, height, follow, row, class: className }: VirtualListProps) {
  const box = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const pinned = useRef(true);
  useLayoutEffect(() => {
    const el = box.current;
    if (el && follow && pinned.current) {
      el.scrollTop = el.scrollHeight;
      setScrollTop(el.scrollTop);
    }
  }, [count, follow]);
  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - 5);
  const last = Math.min(count, Math.ceil((scrollTop + height) / rowHeight) + 5);
  const rows: ComponentChildren[] = [];
  for (let i = first; i < last; i++) {
    rows.push(
      <div key={i} class="vrow" style={{ top: `${i * rowHeight}px`, height: `${rowHeight}px` }}>
        {row(i)}
      </div>,
    );
  }
  return (
    <div
      ref={box}
      class={`vlist ${className ?? ""}`}
      style={{ height: `${height}px` }}
      onScroll={(e) => {
        const el = e.currentTarget;
        pinned.current = el.scrollTop + el.clientHeight >= el.scrollHeight - rowHeight;
        setScrollTop(el.scrollTop);
      }}
    >
      <div style={{ height: `${count * rowHeight}px`, position: "relative" }}>{rows}</div>
    </div>
  );
}

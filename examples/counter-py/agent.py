"""A counter: "up" (default), "down" or "reset". Keeps the last 5 commands, so state deltas show
both a replaced number and list appends/removes."""

initial_state = {"count": 0, "history": []}


def on_message(ctx, message):
    command = str(message.get("text", "up")).strip() or "up"
    if command == "reset":
        ctx.state["count"] = 0
    else:
        ctx.state["count"] += -1 if command == "down" else 1
    ctx.state["history"].append(command)
    if len(ctx.state["history"]) > 5:
        ctx.state["history"].pop(0)
    ctx.send("complete", {"text": f"count = {ctx.state['count']}"})

"""Echoes the message text back as a stream, one word at a time, and counts turns in ctx.state."""

initial_state = {"turns": 0}


def on_message(ctx, message):
    text = str(message.get("text", ""))
    ctx.state["turns"] += 1
    ctx.send("stream_start", {"turn": ctx.state["turns"]})
    words = text.split(" ")
    for i, word in enumerate(words):
        ctx.send("stream_update", {"text": word if i == len(words) - 1 else word + " "})
    ctx.send("stream_end")

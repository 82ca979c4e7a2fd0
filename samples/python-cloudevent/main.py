"""A sample cloudevent function for kiln's Python buildpack."""


def handle_event(cloud_event):
    """Prints a greeting for each event; an event without a name in its data
    is refused (the framework answers 500 and logs the error)."""
    data = cloud_event.data
    name = data.get("name") if isinstance(data, dict) else None
    if not name:
        raise ValueError(f"event {cloud_event['id']}: data has no name")
    print(f"event {cloud_event['id']} from {cloud_event['source']} ({cloud_event['type']}): Hello, {name}!")

"""A sample http function for kiln's Python buildpack."""

from greeting import greeting


def hello_world(request):
    """Greets the name given as ?name= or in a JSON body {"name": "..."};
    answers JSON when the client asks for it."""
    name = request.args.get("name")
    if not name:
        body = request.get_json(force=True, silent=True)
        if isinstance(body, dict):
            name = body.get("name")
    message = greeting(name)
    if request.headers.get("Accept") == "application/json":
        return {"message": message}
    return message + "\n", 200, {"Content-Type": "text/plain; charset=utf-8"}

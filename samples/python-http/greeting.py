"""The greeting, in a module of its own: the function imports its neighbours."""


def greeting(name):
    return f"Hello, {name or 'World'}!"

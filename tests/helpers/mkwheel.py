#!/usr/bin/env python3
"""mkwheel: a pure-Python wheel for tests, made with zipfile alone (no pip,
no network).

    mkwheel.py OUTDIR NAME VERSION CODE

writes OUTDIR/NAME-VERSION-py3-none-any.whl whose module NAME (a package
with one __init__.py) holds CODE.  Entry times are fixed, so the same
arguments give the same bytes."""
import base64
import hashlib
import sys
import zipfile

out, name, version, code = sys.argv[1:5]
info = f"{name}-{version}.dist-info"
files = {
    f"{name}/__init__.py": code + "\n",
    f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\n",
    f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: kiln-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = []
for path, text in files.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
    record.append(f"{path},sha256={digest},{len(text.encode())}")
files[f"{info}/RECORD"] = "\n".join(record + [f"{info}/RECORD,,"]) + "\n"
with zipfile.ZipFile(f"{out}/{name}-{version}-py3-none-any.whl", "w") as z:
    for path, text in files.items():
        z.writestr(zipfile.ZipInfo(path, (1980, 1, 1, 0, 0, 0)), text)

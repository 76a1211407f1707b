#!/usr/bin/env python3
"""Refreshes the code quotes of docs/tutorial.md from examples/tutorial/main.cpp.

Each "<!-- quote: NAME -->" line of the doc, followed by a ```cpp fence, gets the lines between
"// [NAME]" and "// [/NAME]" of the program, less their common indentation -- what
tests/test_tutorial.cpp (Tutorial.DocQuotesEveryMarkedBlockVerbatim) checks.
    python3 tools/tutorial_quotes.py
"""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
source = (root / "examples/tutorial/main.cpp").read_text().splitlines()
doc_path = root / "docs/tutorial.md"

blocks, name, body = {}, None, []
for line in source:
    m = re.match(r"^\s*// \[([a-z-]+)\]\s*$", line)
    if name is None and m:
        name, body = m.group(1), []
    elif name is not None and f"// [/{name}]" in line:
        indent = min((len(l) - len(l.lstrip(" ")) for l in body if l.strip()), default=0)
        blocks[name] = [l[indent:] if len(l) > indent else "" for l in body]
        name = None
    elif name is not None:
        body.append(line)

out, lines, i = [], doc_path.read_text().splitlines(), 0
while i < len(lines):
    out.append(lines[i])
    m = re.match(r"^<!-- quote: ([a-z-]+) -->\s*$", lines[i])
    if m:
        if m.group(1) not in blocks:
            sys.exit(f"docs/tutorial.md quotes '{m.group(1)}', which examples/tutorial/main.cpp does not mark")
        if i + 1 >= len(lines) or lines[i + 1] != "```cpp":
            sys.exit(f"docs/tutorial.md: quote '{m.group(1)}' is not followed by ```cpp")
        out += ["```cpp"] + blocks[m.group(1)] + ["```"]
        i += 2
        while i < len(lines) and lines[i] != "```":
            i += 1
    i += 1
doc_path.write_text("\n".join(out) + "\n")
missing = sorted(set(blocks) - {re.match(r"^<!-- quote: ([a-z-]+)", l).group(1) for l in out if l.startswith("<!-- quote:")})
if missing:
    print("not quoted yet:", ", ".join(missing))

#!/usr/bin/env python3
"""Generate docs/api.md from the comments in include/convvae.h.

Every CVAE_API declaration must be preceded by a comment (directly, or as
part of a group of declarations that share the comment just above them);
with --check the script fails if one is undocumented or docs/api.md is
stale, so the reference cannot drift from the header.
"""
import re
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
header = (root / "include" / "convvae.h").read_text()
out_path = root / "docs" / "api.md"


def entries(text):
    """Yield (section, comment, [declarations]) in header order."""
    section = "General"
    comment = None
    decls = []
    pos = 0
    token = re.compile(r"/\*(.*?)\*/|(CVAE_API[^;]*;)|(typedef\s+enum\s+\w+\s*\{.*?\}\s*\w+;|typedef\s+(?:struct|int)[^;]*;)|(#define\s+CVAE_\w+(?:[^\n]*\\\n)*[^\n]*)", re.S)
    for m in token.finditer(text):
        between = text[pos:m.start()]
        pos = m.end()
        if m.group(1) is not None:
            body = m.group(1)
            if decls:
                yield section, comment, decls
                decls = []
            lines = [re.sub(r"^\s*\* ?", "", l) for l in body.strip().splitlines()]
            txt = "\n".join(lines).strip()
            comment = txt
        else:
            raw = m.group(2) or m.group(3) or m.group(4)
            # declarations keep their line structure only for enums
            decl = raw.strip() if raw.startswith("typedef enum") else " ".join(raw.split())
            if "\n\n" in between and decls:
                yield section, comment, decls
                decls = []
                comment = None
            decls.append(decl)
    if decls:
        yield section, comment, decls


def sections(text):
    """Split the header at its banner comments (/* ---- */ /* Name */ /* ---- */)."""
    text = text.split('extern "C" {\n#endif', 1)[1].rsplit("#ifdef __cplusplus", 1)[0]
    parts = re.split(r"/\* -{20,} \*/\n/\* (\w[^*]*?)\s*\*/\n/\* -{20,} \*/", text)
    yield "General", parts[0]
    for i in range(1, len(parts), 2):
        yield parts[i].strip(), parts[i + 1]


def render():
    md = ["# API reference", "",
          "Generated from the comments in `include/convvae.h` by `scripts/gen-api-doc.py`",
          "(CI fails if a public declaration has no comment or this file is stale).",
          "Every function returning `cvae_status` reports failures through it and",
          "`cvae_last_error()`; all functions are available since 0.1.0.", ""]
    missing = []
    for name, body in sections(header):
        md += [f"## {name}", ""]
        for _, comment, decls in entries(body):
            api = [d for d in decls if d.startswith("CVAE_API")]
            if api and not comment:
                missing += api
            md.append("```c")
            md += decls
            md.append("```")
            if comment:
                md += ["", comment]
            md.append("")
    return "\n".join(md).rstrip() + "\n", missing


text, missing = render()
if missing:
    print("undocumented public declarations:", *missing, sep="\n  ", file=sys.stderr)
    sys.exit(1)
if "--check" in sys.argv:
    if not out_path.exists() or out_path.read_text() != text:
        print("docs/api.md is stale: run scripts/gen-api-doc.py", file=sys.stderr)
        sys.exit(1)
    print("api doc: every public declaration documented, docs/api.md up to date")
else:
    out_path.write_text(text)
    print(f"wrote {out_path.relative_to(root)}")

"""Results as JSON lines, written whole or not at all (a temporary file, then a rename)."""
import json
import os


def write_jsonl(path, rows):
    with open(path + ".tmp", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    os.replace(path + ".tmp", path)

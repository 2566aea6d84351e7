"""Board-side half of the artifact sync (stdlib only; sent as ``python3 -c <this file> ...``, never imported there).

``hash DIR``: print ``{relative path: sha256}`` of every file under DIR (the manifest excluded), as JSON.
``receive DIR``: read a tar stream on stdin whose first member is the manifest ``{path: {sha256, size}}``; write
each following member beside its final path, check its sha256 against the manifest, rename it into place, and
write the manifest last. Prints ``{path: sha256}`` of what it placed. Exits 2 on a hash mismatch or a bad path.
"""

import hashlib
import json
import os
import sys
import tarfile

MANIFEST = ".edgeprune-manifest.json"


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def hash_dir(root):
    out = {}
    for base, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(base, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            if rel != MANIFEST and not name.endswith(".edgeprune-part"):
                out[rel] = sha256_file(path)
    return out


def safe_target(root, rel):
    parts = rel.split("/")
    if rel.startswith("/") or ".." in parts or not rel:
        sys.exit(f"refusing path {rel!r} outside {root}")
    return os.path.join(root, *parts)


def write_atomic(path, data):
    tmp = path + ".edgeprune-part"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def receive(root):
    placed = {}
    with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as tar:
        manifest = None
        for member in tar:
            data = tar.extractfile(member).read() if member.isfile() else None
            if data is None:
                continue
            if manifest is None:
                manifest = json.loads(data)
                continue
            want = manifest.get(member.name, {}).get("sha256")
            got = hashlib.sha256(data).hexdigest()
            if got != want:
                print(f"sha256 mismatch for {member.name}: got {got}, manifest says {want}", file=sys.stderr)
                sys.exit(2)
            target = safe_target(root, member.name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            write_atomic(target, data)
            placed[member.name] = got
    if manifest is not None:
        write_atomic(os.path.join(root, MANIFEST), json.dumps(manifest, indent=1, sort_keys=True).encode())
    print(json.dumps(placed))


def main(argv):
    command, root = argv[1], os.path.expanduser(argv[2])
    os.makedirs(root, exist_ok=True)
    if command == "hash":
        print(json.dumps(hash_dir(root)))
    elif command == "receive":
        receive(root)
    else:
        sys.exit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv)

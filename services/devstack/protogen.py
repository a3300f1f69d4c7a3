"""Generate the Python code for protos/ beside the .proto files; `--check` fails when it is stale.

python -m services.devstack.protogen [--check] protos
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def generate(proto_root: Path, out: Path) -> list[Path]:
    """Compile every .proto under proto_root into out; return the generated files (relative)."""
    sources = sorted(p.relative_to(proto_root) for p in proto_root.rglob("*.proto"))
    include = resources.files("grpc_tools") / "_proto"
    bin_dir = Path(sys.executable).parent  # mypy-protobuf's plugins sit beside the interpreter
    args = [
        "protoc",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"-I{proto_root}",
        f"-I{include}",
        f"--python_out={out}",
        f"--mypy_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_grpc_out={out}",
        *(str(s) for s in sources),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for package in {s.parent for s in sources}:
        for part in [package, *package.parents]:
            if part != Path("."):
                (out / part / "__init__.py").touch()
    return sorted(
        p.relative_to(out)
        for p in out.rglob("*")
        if p.is_file() and (p.name.endswith(GENERATED_SUFFIXES) or p.name == "__init__.py")
    )


def existing(proto_root: Path) -> list[Path]:
    return sorted(
        p.relative_to(proto_root)
        for p in proto_root.rglob("*")
        if p.is_file() and (p.name.endswith(GENERATED_SUFFIXES) or p.name == "__init__.py")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if generated code is stale")
    parser.add_argument("proto_root", type=Path)
    args = parser.parse_args(argv)
    root: Path = args.proto_root.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(root, Path(tmp))
        if args.check:
            stale = [
                str(f)
                for f in sorted(set(fresh) | set(existing(root)))
                if not (root / f).exists()
                or not (Path(tmp) / f).exists()
                or not filecmp.cmp(root / f, Path(tmp) / f, shallow=False)
            ]
            if stale:
                print("generated code is stale, run `make protos`:", *stale, sep="\n  ")
                return 1
            print(f"generated code is up to date ({len(fresh)} files)")
            return 0
        for stale_file in set(existing(root)) - set(fresh):
            (root / stale_file).unlink()
        for f in fresh:
            (root / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(tmp) / f, root / f)
    print(f"generated {len(fresh)} files under {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

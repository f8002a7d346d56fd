#!/usr/bin/env python3
"""Generates the Yocto recipe's voltage-crates.inc from the workspace's Cargo.lock.

The layer builds offline and reproducibly: bitbake fetches every crate named in SRC_URI by its
crate:// URI and checks it against the sha256 recorded in Cargo.lock, so the build never asks
crates.io what a version contains. The output has the shape OE-Core's cargo-update-recipe-crates
class writes (`bitbake -c update_crates voltage`), so either tool can refresh it; only the
header comment differs:

    SRC_URI += " \\
        crate://crates.io/NAME/VERSION \\
    "
    SRC_URI[NAME-VERSION.sha256sum] = "..."

Workspace members (no `source`) are built from the layer's own SRC_URI and are skipped. A
dependency from git or another registry cannot be expressed as crate://crates.io: it is
reported with the package and its source, and the generator fails, so it is never silently
left out of an offline build.

Usage: crates_inc.py [--check] [--lock Cargo.lock] [--out voltage-crates.inc]
"""

import argparse
import sys
import tomllib

CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"
HEADER = (
    "# Generated from Cargo.lock by scripts/yocto-crates; do not edit.\n"
    "# CI (scripts/yocto-check) fails when this file and Cargo.lock disagree.\n\n"
)


# The leading space after the quote is the format cargo-update-recipe-crates writes; oelint-adv
# would have it removed, which would make the two generators' files differ.
NOLINT = "# nooelint: oelint.vars.inconspaces, oelint.vars.notneededspace\n"


class LockError(Exception):
    pass


def render(lock_text: str, lock_name: str = "Cargo.lock") -> str:
    try:
        lock = tomllib.loads(lock_text)
    except tomllib.TOMLDecodeError as e:
        raise LockError(f"{lock_name}: not TOML: {e}") from e
    packages = lock.get("package")
    if not isinstance(packages, list):
        raise LockError(f"{lock_name}: no [[package]] entries")
    uris, sums, problems = [], [], []
    for p in packages:
        name, version, source = p.get("name"), p.get("version"), p.get("source")
        if source is None:
            continue  # a workspace member
        if source != CRATES_IO:
            problems.append(
                f"{lock_name}: package {name} {version} comes from {source}: "
                "only crates.io crates can be fetched as crate://crates.io; "
                "add it to the recipe as a git:// SRC_URI with a pinned SRCREV "
                "(and a [patch] section) or publish it to crates.io"
            )
            continue
        checksum = p.get("checksum")
        if not checksum:
            problems.append(f"{lock_name}: package {name} {version} has no checksum")
            continue
        uris.append(f"    crate://crates.io/{name}/{version} \\\n")
        sums.append(f'SRC_URI[{name}-{version}.sha256sum] = "{checksum}"\n')
    if problems:
        raise LockError("\n".join(problems))
    if not uris:
        raise LockError(f"{lock_name}: no crates.io packages")
    return HEADER + "# from Cargo.lock\n" + NOLINT + 'SRC_URI += " \\\n' + "".join(uris) + '"\n\n' + "".join(sums)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lock", default="Cargo.lock")
    ap.add_argument(
        "--out",
        default="yocto-layer/meta-voltage/recipes-voltage/voltage/voltage-crates.inc",
    )
    ap.add_argument("--check", action="store_true", help="fail if --out is not current")
    a = ap.parse_args(argv)
    try:
        with open(a.lock, encoding="utf-8") as f:
            text = render(f.read(), a.lock)
    except (LockError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if a.check:
        try:
            with open(a.out, encoding="utf-8") as f:
                current = f.read()
        except OSError as e:
            print(f"error: {a.out}: {e}", file=sys.stderr)
            return 1
        if current != text:
            print(
                f"error: {a.out} does not match {a.lock}; run scripts/yocto-crates and commit the result",
                file=sys.stderr,
            )
            return 1
        print(f"{a.out}: current ({text.count('crate://')} crates)")
        return 0
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"{a.out}: {text.count('crate://')} crates")
    return 0


if __name__ == "__main__":
    sys.exit(main())

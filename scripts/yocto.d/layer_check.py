#!/usr/bin/env python3
"""Static checks of yocto-layer/ that need no bitbake: what a recipe installs exists, the license
checksum matches, the kas files parse and validate against kas's schema, and every kas file's
MACHINE and board agree with board-configs/. Prints one line per check; exits 1 on a problem.

Run by scripts/yocto-check (which provides kas in a virtualenv)."""

import hashlib
import pathlib
import re
import subprocess
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]
LAYER = ROOT / "yocto-layer/meta-voltage"
problems = []


def problem(msg):
    problems.append(msg)
    print(f"  FAIL {msg}")


def recipe_text(p):
    # Join continuation lines so SRC_URI and install lines are whole.
    return re.sub(r"\\\n", " ", p.read_text())


def check_local_files():
    n = 0
    for rec in sorted(list(LAYER.rglob("*.bb")) + list(LAYER.rglob("*.bbappend"))):
        text = recipe_text(rec)
        rel = rec.relative_to(ROOT)
        search = [rec.parent / "files", rec.parent / rec.name.split("_")[0].split(".")[0]]
        for m in re.finditer(r"file://([^\s\";']+)", text):
            name = m.group(1)
            if name.startswith("${") or name in ("Cargo.toml", "LICENSE"):
                continue
            n += 1
            # Directly in files/, or per machine in files/<MACHINE>/ (FILESOVERRIDES).
            if not any((d / name).exists() or list(d.glob(f"*/{name}")) for d in search):
                problem(f"{rel}: SRC_URI file://{name} not found in {', '.join(str(d.relative_to(ROOT)) for d in search)}")
        # Files installed from the firmware source tree (${S}/...).
        for m in re.finditer(r"\$\{S\}/([^\s]+)", text):
            path = m.group(1)
            n += 1
            if "${VOLTAGE_BOARD}" in path:
                if not list(ROOT.glob(path.replace("${VOLTAGE_BOARD}", "*"))):
                    problem(f"{rel}: installs {path}, but there is no board file")
            elif not list(ROOT.glob(path)):
                problem(f"{rel}: installs ${{S}}/{path}, which does not exist")
        for m in re.finditer(r"UNPACKDIR\}/([^\s]+)", text):
            name = m.group(1)
            n += 1
            if f"file://{name}" not in text:
                problem(f"{rel}: installs ${{UNPACKDIR}}/{name}, which SRC_URI does not fetch")
    print(f"  ok   {n} files named by the layer's recipes exist")


def check_license():
    """LIC_FILES_CHKSUM names the source tree's LICENSE (Apache-2.0) with its md5."""
    rec = LAYER / "recipes-voltage/voltage/voltage_git.bb"
    m = re.search(r"LIC_FILES_CHKSUM = \"file://LICENSE;md5=([0-9a-f]+)\"", rec.read_text())
    if not m:
        return problem(f"{rec}: LIC_FILES_CHKSUM must be file://LICENSE;md5=...")
    text = (ROOT / "LICENSE").read_bytes()
    got = hashlib.md5(text).hexdigest()
    if got != m.group(1) or b"Apache License" not in text:
        problem(f"LIC_FILES_CHKSUM: LICENSE has md5 {got}, the recipe says {m.group(1)}")
    else:
        print(f"  ok   LIC_FILES_CHKSUM matches LICENSE (Apache-2.0)")


def check_nginx_site():
    """The layer's nginx site is the shipped, tested config/nginx/voltage.conf (one source)."""
    site = LAYER / "recipes-httpd/nginx/files/voltage.site"
    if site.read_bytes() != (ROOT / "config/nginx/voltage.conf").read_bytes():
        problem(f"{site.relative_to(ROOT)} differs from config/nginx/voltage.conf: copy it over")
    else:
        print("  ok   nginx site = config/nginx/voltage.conf (tested with a real nginx)")


def check_kas():
    import argparse
    import os
    import tempfile

    import jsonschema
    from kas.configschema import CONFIGSCHEMA
    from kas.context import create_global_context
    from kas.includehandler import IncludeHandler

    # kas reads its work directory from the environment; nothing is checked out here.
    os.environ.setdefault("KAS_WORK_DIR", tempfile.mkdtemp(prefix="kas-check-"))
    create_global_context(argparse.Namespace(update=False, no_color=True))

    kas_files = sorted((ROOT / "yocto-layer/kas").glob("*.yml"))
    boards = {}
    for f in (ROOT / "board-configs").glob("*.toml"):
        boards[f.stem] = tomllib.loads(f.read_text())
    for f in kas_files:
        if f.name == "common.yml":
            continue
        rel = f.relative_to(ROOT)
        try:
            config, missing = IncludeHandler([str(f)], use_lock=False).get_config()
            jsonschema.validate(config, CONFIGSCHEMA)
        except Exception as e:  # kas and jsonschema raise several types; all mean "broken"
            problem(f"{rel}: {e}")
            continue
        machine = config.get("machine")
        local = "\n".join(config.get("local_conf_header", {}).values())
        m = re.search(r'VOLTAGE_BOARD = "([^"]+)"', local)
        board = m.group(1) if m else machine
        b = boards.get(board)
        if b is None:
            problem(f"{rel}: board {board} has no board-configs/{board}.toml")
            continue
        want = b.get("target", {}).get("yocto_machine")
        if want != machine:
            problem(f"{rel}: machine {machine}, but board-configs/{board}.toml says yocto_machine {want}")
            continue
        layers = config["repos"]["voltage"]["layers"]
        for layer in layers:
            if not (ROOT / layer / "conf/layer.conf").exists():
                problem(f"{rel}: layer {layer} has no conf/layer.conf")
        if config.get("distro") != "voltage":
            problem(f"{rel}: distro {config.get('distro')}: the layer's changes need DISTRO = voltage")
            continue
        print(f"  ok   {rel}: valid kas config, MACHINE {machine}, board {board}")
    for name, b in boards.items():
        if "target" in b and not any(
            f'VOLTAGE_BOARD = "{name}"' in f.read_text() for f in kas_files
        ):
            problem(f"board-configs/{name}.toml has a target but no kas file builds it")


def check_scripts():
    for s in LAYER.rglob("files/*"):
        if s.is_file() and s.read_text(errors="replace").startswith("#!/bin/sh"):
            r = subprocess.run(["sh", "-n", str(s)], capture_output=True, text=True)
            if r.returncode:
                problem(f"{s.relative_to(ROOT)}: {r.stderr.strip()}")
            else:
                print(f"  ok   {s.relative_to(ROOT)}: sh -n")


def check_compat():
    conf = (LAYER / "conf/layer.conf").read_text()
    rv = re.search(r'rust-version = "([0-9.]+)"', (ROOT / "Cargo.toml").read_text()).group(1)
    series = re.search(r'LAYERSERIES_COMPAT_voltage = "([^"]+)"', conf).group(1).split()
    # Rust of each series' OE-Core (meta/recipes-devtools/rust/rust_*.bb on its branch).
    # scarthgap: tcmode-default.inc RUSTVERSION "1.75%"; wrynose: rust/cargo 1.94.1.
    oe_rust = {"scarthgap": "1.75", "wrynose": "1.94"}
    ver = lambda v: tuple(int(x) for x in v.split("."))
    for s in series:
        if s not in oe_rust:
            problem(f"LAYERSERIES_COMPAT names {s}, whose Rust version this check does not know")
        elif ver(oe_rust[s]) < ver(rv):
            problem(f"LAYERSERIES_COMPAT names {s} (Rust {oe_rust[s]}), below rust-version {rv}")
    print(f"  ok   LAYERSERIES_COMPAT {' '.join(series)}: OE-Core Rust >= workspace rust-version {rv}")


def main():
    for check in (check_compat, check_local_files, check_license, check_nginx_site, check_scripts, check_kas):
        check()
    if problems:
        print(f"{len(problems)} problem(s) in yocto-layer/", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

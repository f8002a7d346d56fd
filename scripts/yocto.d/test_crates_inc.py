"""Tests of the crates.inc generator: it reproduces the committed file, and it refuses what an
offline build could not fetch."""

import pathlib
import unittest

import crates_inc

ROOT = pathlib.Path(__file__).resolve().parents[2]
INC = ROOT / "yocto-layer/meta-voltage/recipes-voltage/voltage/voltage-crates.inc"

LOCK = """version = 4

[[package]]
name = "voltage"
version = "0.1.0"
dependencies = ["serde"]

[[package]]
name = "serde"
version = "1.0.228"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "9a8e94ea7f378bd32cbbd37198a4a91436180c5bb472411e48b5ec2e2124ae9e"
"""


class CratesInc(unittest.TestCase):
    def test_the_committed_file_is_what_cargo_lock_generates(self):
        want = crates_inc.render((ROOT / "Cargo.lock").read_text())
        self.assertEqual(INC.read_text(), want, "run scripts/yocto-crates")

    def test_every_locked_crate_has_a_uri_and_its_checksum(self):
        text = INC.read_text()
        import tomllib

        lock = tomllib.loads((ROOT / "Cargo.lock").read_text())
        for p in lock["package"]:
            if "source" not in p:
                self.assertNotIn(f"/{p['name']}/{p['version']} ", text)
                continue
            self.assertIn(f"crate://crates.io/{p['name']}/{p['version']} \\", text)
            self.assertIn(
                f'SRC_URI[{p["name"]}-{p["version"]}.sha256sum] = "{p["checksum"]}"', text
            )

    def test_members_are_skipped_and_crates_listed(self):
        out = crates_inc.render(LOCK)
        self.assertIn("    crate://crates.io/serde/1.0.228 \\\n", out)
        self.assertIn(
            'SRC_URI[serde-1.0.228.sha256sum] = "9a8e94ea7f378bd32cbbd37198a4a91436180c5bb472411e48b5ec2e2124ae9e"',
            out,
        )
        self.assertNotIn("voltage", out.split("# from Cargo.lock")[1])

    def test_a_git_dependency_is_reported_not_dropped(self):
        lock = LOCK + """
[[package]]
name = "tokio-modbus"
version = "0.17.0"
source = "git+https://github.com/slowtec/tokio-modbus?rev=abc#abc"
"""
        with self.assertRaises(crates_inc.LockError) as e:
            crates_inc.render(lock, "Cargo.lock")
        msg = str(e.exception)
        self.assertIn("tokio-modbus 0.17.0", msg)
        self.assertIn("git+https://github.com/slowtec/tokio-modbus", msg)
        self.assertIn("SRCREV", msg)

    def test_a_crate_without_checksum_is_reported(self):
        lock = LOCK.replace(
            'checksum = "9a8e94ea7f378bd32cbbd37198a4a91436180c5bb472411e48b5ec2e2124ae9e"\n', ""
        )
        with self.assertRaisesRegex(crates_inc.LockError, "serde 1.0.228 has no checksum"):
            crates_inc.render(lock)

    def test_broken_toml_names_the_file(self):
        with self.assertRaisesRegex(crates_inc.LockError, "^x.lock: not TOML"):
            crates_inc.render("[[package]\n", "x.lock")


if __name__ == "__main__":
    unittest.main()

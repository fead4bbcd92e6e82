"""The emporium binary's command line: a malformed setting stops it at once
with exit 2 and a message naming the flag and its variable; --help lists
every setting."""
import base64
import json
import os
import subprocess
import unittest

from node import BIN


def run(args, **env):
    full = {k: v for k, v in os.environ.items() if not k.startswith("EMPORIUM_")}
    full.update(EMPORIUM_JWT_SECRET="s", **env)
    p = subprocess.run([BIN] + args, env=full, capture_output=True, text=True, timeout=20)
    return p.returncode, p.stdout + p.stderr


class Cli(unittest.TestCase):
    def test_an_unknown_flag_exits_2_naming_it(self):
        code, out = run(["serve", "--no-such-flag", "x"])
        self.assertEqual(code, 2, out)
        self.assertIn("unknown flag --no-such-flag", out)

    def test_a_port_out_of_range_exits_2_naming_the_variable(self):
        code, out = run(["serve"], EMPORIUM_HTTP="127.0.0.1:99999")
        self.assertEqual(code, 2, out)
        self.assertIn("--http (EMPORIUM_HTTP): port must be from 1 to 65535, got '99999'", out)

    def test_a_malformed_seed_exits_2_naming_the_variable(self):
        code, out = run(["serve", "--seeds", "127.0.0.1:7070,nohost"])
        self.assertEqual(code, 2, out)
        self.assertIn("EMPORIUM_SEEDS", out)

    def test_a_public_cluster_address_without_certificates_refuses_to_start(self):
        code, out = run(["serve"], EMPORIUM_CLUSTER="0.0.0.0:7070")
        self.assertEqual(code, 2, out)
        self.assertIn("not a loopback address", out)

    def test_a_malformed_number_exits_2(self):
        code, out = run(["serve"], EMPORIUM_STORE_CONNECTIONS="four")
        self.assertEqual(code, 2, out)
        self.assertIn("EMPORIUM_STORE_CONNECTIONS", out)

    def test_token_count_prints_one_token_per_sub(self):
        code, out = run(["token", "--sub", "buyer", "--role", "customer", "--count", "3"])
        self.assertEqual(code, 0, out)
        subs = []
        for line in out.split():
            payload = line.split(".")[1]
            subs.append(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"])
        self.assertEqual(subs, ["buyer-0", "buyer-1", "buyer-2"])
        code, out = run(["token", "--sub", "b", "--role", "customer", "--count", "x"])
        self.assertEqual(code, 2, out)
        self.assertIn("--count", out)

    def test_help_lists_every_setting(self):
        code, out = run(["--help"])
        self.assertEqual(code, 0, out)
        for name in ("EMPORIUM_HTTP", "EMPORIUM_PG", "EMPORIUM_KAFKA", "EMPORIUM_SEEDS",
                     "EMPORIUM_ACTOR_TIMEOUT_MS", "EMPORIUM_WS_MAX_SUBSCRIPTIONS"):
            self.assertIn(name, out)

    def test_a_bad_fake_provider_address_exits_2(self):
        code, out = run(["fake-provider", "--listen", "127.0.0.1:http"])
        self.assertEqual(code, 2, out)


if __name__ == "__main__":
    unittest.main(verbosity=2)

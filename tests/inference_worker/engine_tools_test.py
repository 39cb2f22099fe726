"""ctest EngineTools.*: the engine tools' output contract and their errors, run as a user runs them.

semshare-generate, semshare-eval (fidelity, ttft, rope-ablation) and semshare-make-model write
JSON to stdout (or --json FILE) and a readable table; bad flags and bad files end in a clear
message and a non-zero exit, never a crash: 2 for a bad flag or bad input, 1 for a file that
cannot be read.

Usage: engine_tools_test.py SOURCE_DIR BIN_DIR [unittest args] (Python 3 standard library).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

SOURCE_DIR = ""
BIN_DIR = ""


def austen():
  return os.path.join(SOURCE_DIR, "tests", "data", "austen-5m")


def dev_pairs():
  return os.path.join(SOURCE_DIR, "tests", "data", "pairs-dev.jsonl")


def run_tool(name, *args, timeout=300):
  """(returncode, stdout, stderr) of a tool run with `args`."""
  out = subprocess.run([os.path.join(BIN_DIR, name), *args], capture_output=True, text=True,
                       timeout=timeout, check=False)
  return out.returncode, out.stdout, out.stderr


def run_json(test, name, *args):
  """The JSON a tool prints on stdout; fails the test when the tool fails."""
  rc, stdout, stderr = run_tool(name, *args)
  test.assertEqual(rc, 0, "%s %s failed:\n%s" % (name, " ".join(args), stderr))
  return json.loads(stdout)


class EngineToolsTest(unittest.TestCase):

  @classmethod
  def setUpClass(cls):
    cls.work = tempfile.mkdtemp(prefix="semshare-engine-tools-")
    cls.tiny = os.path.join(cls.work, "tiny")
    rc, _, stderr = run_tool("semshare-make-model", "--preset", "tiny", "--seed", "3", "--out",
                             cls.tiny)
    assert rc == 0, stderr
    with open(dev_pairs(), encoding="utf-8") as f:
      cls.pair = json.loads(f.readline())

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.work, ignore_errors=True)

  def test_make_model_writes_a_checkpoint_named_by_its_seed(self):
    out = os.path.join(self.work, "again")
    first = run_json(self, "semshare-make-model", "--preset", "tiny", "--seed", "3", "--out", out)
    self.assertEqual(first["preset"], "tiny")
    self.assertGreater(first["parameters"], 0)
    self.assertEqual(first["bytes"], os.path.getsize(os.path.join(out, "model.safetensors")))
    with open(os.path.join(out, "config.json"), encoding="utf-8") as f:
      self.assertEqual(json.load(f)["model_type"], "llama")
    other = run_json(self, "semshare-make-model", "--preset", "tiny", "--seed", "4", "--out",
                     os.path.join(self.work, "other"))
    same = run_json(self, "semshare-make-model", "--preset", "tiny", "--seed", "3", "--out", out)
    self.assertEqual(same["fingerprint"], first["fingerprint"])
    self.assertNotEqual(other["fingerprint"], first["fingerprint"])

  def test_generate_prints_the_contract_fields_and_a_table(self):
    rc, stdout, stderr = run_tool("semshare-generate", "--model", austen(), "--prompt",
                                  "It is a truth universally acknowledged", "--max-tokens", "8",
                                  "--method", "full")
    self.assertEqual(rc, 0, stderr)
    result = json.loads(stdout)
    for key in ("text", "token_ids", "ttft_ms", "similarity", "recompute_share", "kv_bytes"):
      self.assertIn(key, result)
    self.assertTrue(1 <= len(result["token_ids"]) <= 8)
    self.assertGreater(result["ttft_ms"], 0)
    self.assertGreater(result["kv_bytes"], 0)
    self.assertEqual(result["method"], "full")
    self.assertEqual(result["recompute_share"], 1)
    self.assertIn("ttft", stderr)  # the table goes to stderr when the JSON takes stdout
    # With --json FILE the JSON goes to the file and the table to stdout.
    path = os.path.join(self.work, "generate.json")
    rc, stdout, _ = run_tool("semshare-generate", "--model", austen(), "--prompt",
                             "It is a truth universally acknowledged", "--max-tokens", "8",
                             "--method", "full", "--json", path)
    self.assertEqual(rc, 0)
    self.assertIn("ttft", stdout)
    with open(path, encoding="utf-8") as f:
      self.assertEqual(json.load(f)["token_ids"], result["token_ids"])

  def test_generate_reusing_an_identical_reference_serves_what_full_prefill_serves(self):
    prompt = self.pair["target"]
    common = ["--model", austen(), "--prompt", prompt, "--max-tokens", "16", "--retention", "none"]
    full = run_json(self, "semshare-generate", *common, "--method", "full")
    reused = run_json(self, "semshare-generate", *common, "--reference", prompt)
    self.assertEqual(reused["method"], "semshare")
    self.assertTrue(reused["cache_hit"])
    self.assertEqual(reused["similarity"], 1)
    self.assertLess(reused["recompute_share"], 0.5)
    self.assertEqual(reused["token_ids"], full["token_ids"])
    self.assertEqual(reused["options"]["retention"], "none")

  def test_fidelity_reports_per_pair_fields_and_the_summary(self):
    result = run_json(self, "semshare-eval", "fidelity", "--model", austen(), "--pairs",
                      dev_pairs(), "--max-pairs", "2", "--generate-tokens", "8",
                      "--continuation-tokens", "16")
    self.assertEqual(len(result["pairs"]), 2)
    for row in result["pairs"]:
      for key in ("similarity", "hit", "rouge_l", "ppl_ratio", "first_token_agree",
                  "recompute_share", "kv_kept_share"):
        self.assertIn(key, row)
    summary = result["summary"]
    for key in ("rouge_l_mean", "ppl_ratio_mean", "hit_rate", "recompute_share_mean",
                "kv_kept_share_mean"):
      self.assertIn(key, summary)
    self.assertEqual(summary["pairs"], 2)
    options = result["options"]
    self.assertEqual(options["retention"], "exp_decay")
    for key in ("sink_tokens", "recent_window", "observation_window", "last_tokens"):
      self.assertIn(key, options)

  def test_fidelity_of_full_prefill_against_itself_is_exact(self):
    result = run_json(self, "semshare-eval", "fidelity", "--model", austen(), "--pairs",
                      dev_pairs(), "--max-pairs", "2", "--generate-tokens", "8",
                      "--continuation-tokens", "16", "--method", "full", "--retention", "none")
    for row in result["pairs"]:
      self.assertFalse(row["hit"])
      self.assertEqual(row["rouge_l"], 1)
      self.assertAlmostEqual(row["ppl_ratio"], 1, places=9)
      self.assertEqual(row["kv_kept_share"], 1)

  def test_ttft_reports_every_method_at_every_length(self):
    result = run_json(self, "semshare-eval", "ttft", "--model", self.tiny, "--lengths", "64,96",
                      "--repeats", "1")
    self.assertEqual([row["tokens"] for row in result["rows"]], [64, 96])
    for row in result["rows"]:
      for method in ("full", "prefix", "semshare"):
        self.assertGreater(row[method]["ttft_ms"], 0)
        self.assertGreater(row[method]["kv_bytes"], 0)
        self.assertIn("peak_rss_mb", row[method])
      self.assertAlmostEqual(row["speedup"], row["full"]["ttft_ms"] / row["semshare"]["ttft_ms"],
                             places=6)
    self.assertEqual(result["model_fingerprint"],
                     run_json(self, "semshare-make-model", "--preset", "tiny", "--seed", "3",
                              "--out", os.path.join(self.work, "fingerprint"))["fingerprint"])

  def test_openblas_runs_kernels_the_cpu_can_run(self):
    """Debian's OpenBLAS falls back to SSE3 kernels on CPUs it does not know; the tools restart
    themselves with OPENBLAS_CORETYPE set (common/blas_core.h) and report the core they ran."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    out = subprocess.run([os.path.join(BIN_DIR, "semshare-eval"), "ttft", "--model", self.tiny,
                          "--lengths", "64", "--repeats", "1"], capture_output=True, text=True,
                         timeout=300, check=True, env=env)
    core = json.loads(out.stdout)["blas_core"]
    if not core:
      self.skipTest("the BLAS in use is not OpenBLAS")
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
      flags = next((line.split(":", 1)[1].split() for line in cpuinfo
                    if line.startswith("flags")), [])
    if "avx512f" in flags:
      self.assertIn(core.lower(), ("skylakex", "cooperlake", "sapphirerapids"))
    elif "avx2" in flags:
      self.assertIn(core.lower(), ("haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"))

  def test_rope_ablation_reports_four_configurations(self):
    result = run_json(self, "semshare-eval", "rope-ablation", "--model", austen(), "--pairs",
                      dev_pairs(), "--max-pairs", "1")
    self.assertEqual([row["config"] for row in result["rows"]],
                     ["ecache_rope+rerotate", "no_ecache_rope", "no_rerotate", "neither"])
    by_config = {row["config"]: row["relative_l2_deviation_mean"] for row in result["rows"]}
    self.assertLess(by_config["ecache_rope+rerotate"], by_config["no_rerotate"])
    self.assertIn("options", result)

  def test_bad_input_is_a_clear_error_and_never_a_crash(self):
    pairs = dev_pairs()
    model = austen()
    malformed = os.path.join(self.work, "malformed.jsonl")
    with open(malformed, "w", encoding="utf-8") as f:
      f.write('{"reference": "a", "target": "b", "continuation": "c"}\n{"reference": \n')
    truncated = os.path.join(self.work, "truncated")
    shutil.copytree(self.tiny, truncated)
    weights = os.path.join(truncated, "model.safetensors")
    with open(weights, "r+b") as f:
      f.truncate(os.path.getsize(weights) // 2)
    cases = [
        (["semshare-generate", "--prompt", "x"], "--model DIR is required"),
        (["semshare-generate", "--model", model], "--prompt is required"),
        (["semshare-generate", "--model", "/nonexistent/model", "--prompt", "x"],
         "/nonexistent/model"),
        (["semshare-generate", "--model", truncated, "--prompt", "x"], "model.safetensors"),
        (["semshare-generate", "--model", model, "--prompt", "x", "--method", "bogus"], "bogus"),
        (["semshare-generate", "--model", model, "--prompt", "x", "--retention", "nope"], "nope"),
        (["semshare-generate", "--model", model, "--prompt", "x", "--max-tokens", "-1"],
         "max_tokens"),
        (["semshare-generate", "--model", model, "--prompt", "x", "--threads", "-1"], "--threads"),
        (["semshare-generate", "--model", model, "--prompt", "x", "--device", "tpu"], "tpu"),
        # Checked before the model loads: the flag is named, not the missing directory.
        (["semshare-eval", "ttft", "--model", "/nonexistent/model", "--bypass-fixed-costs",
          "maybe"], "'maybe' is not auto, on or off"),
        (["semshare-eval"], "usage"),
        (["semshare-eval", "bogus", "--model", model], "unknown command 'bogus'"),
        (["semshare-eval", "fidelity", "--model", model], "--pairs FILE.jsonl is required"),
        (["semshare-eval", "fidelity", "--model", model, "--pairs", "/nonexistent.jsonl"],
         "/nonexistent.jsonl"),
        (["semshare-eval", "fidelity", "--model", model, "--pairs", malformed], "malformed.jsonl:2"),
        (["semshare-eval", "fidelity", "--model", model, "--pairs", pairs, "--continuation-tokens",
          "-1"], "continuation_tokens"),
        (["semshare-eval", "fidelity", "--model", model, "--pairs", pairs, "--max-pairs", "-1"],
         "--max-pairs"),
        (["semshare-eval", "rope-ablation", "--model", model, "--pairs", pairs, "--max-pairs", "-2"],
         "--max-pairs"),
        (["semshare-eval", "ttft", "--model", model, "--lengths", "64,abc"], "'abc'"),
        (["semshare-eval", "ttft", "--model", model, "--lengths", ","], "no prompt lengths"),
        (["semshare-eval", "ttft", "--model", model, "--repeats", "0"], "repeats"),
        (["semshare-make-model", "--preset", "nope", "--seed", "1", "--out",
          os.path.join(self.work, "nope")], "unknown model preset 'nope'"),
        (["semshare-make-model", "--preset", "tiny"], "--out"),
    ]
    # Files that are missing or cannot be read exit 1; everything else is the caller's mistake.
    unreadable = {"/nonexistent/model", "model.safetensors", "/nonexistent.jsonl"}
    for args, message in cases:
      with self.subTest(args=" ".join(args)):
        rc, _, stderr = run_tool(*args)
        # A negative code means killed by a signal.
        self.assertEqual(rc, 1 if message in unreadable else 2, stderr)
        self.assertNotIn("terminate called", stderr)
        self.assertIn(message, stderr)


if __name__ == "__main__":
  SOURCE_DIR, BIN_DIR = sys.argv[1], sys.argv[2]
  unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)

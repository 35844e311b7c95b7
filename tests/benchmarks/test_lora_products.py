"""benchmarks/lora_products.py compares RoutedLora with a masked stacked product: both must compute
the same adapter gradients, or the timing compares different work."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "lora_products.py"


def test_masked_product_and_routed_lora_give_the_same_gradients():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tokens", "3", "--repeats", "1", "--steps", "1"],
                          capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["max_gradient_gap"]["3"] < 1e-4
    assert set(result["ms_per_layer"]["3"]) == {"routed_fp32", "masked_fp32", "masked_bf16"}

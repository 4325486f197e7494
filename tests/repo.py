"""Where things are, for tests in any folder of tests/."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository
CONFIGS = ROOT / "configs"
FIXTURES = ROOT / "tests" / "fixtures"
# The real public datasets (Spider, BIRD mini-dev) live beside the checkout, at ../shared/datasets.
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"

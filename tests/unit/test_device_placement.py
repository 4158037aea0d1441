"""Nothing in ``src/`` makes a tensor that meets the model's tensors without saying where: no
``.cuda()``, and every ``torch.zeros/empty/ones/randn/rand/arange/eye/tensor/full/randint/
randperm`` call names a ``device=``, derives one (``*_like``, ``.to(...)``), draws from a CPU
``generator=``, or says on the line above why the CPU is right (``# cpu: <why>``). Datasets
(``data/``) and RNG states (``tracking/rng.py``) are made on the CPU by design and moved with
the batch or never."""

from __future__ import annotations

import re
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "src" / "beyond_backprop"
FACTORY = re.compile(
    r"torch\.(zeros|empty|ones|randn|rand|arange|eye|tensor|full|randint|randperm|linspace)\("
)
CPU_BY_DESIGN = ("data/", "tracking/rng.py")


def offending_lines(root: Path = SOURCE) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        name = path.relative_to(root).as_posix()
        if name.startswith(CPU_BY_DESIGN):
            continue
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines, 1):
            code = line.strip()
            above = lines[number - 2].strip() if number > 1 else ""
            if code.startswith(">>>") or code.startswith("#"):
                continue  # docstring examples and comments
            if ".cuda(" in code:
                found.append(f"{name}:{number}: .cuda(): {code}")
            if not FACTORY.search(code):
                continue
            if any(ok in code for ok in ("device=", "generator=", ".to(")):
                continue
            if above.startswith("# cpu:"):
                continue  # the line above says why the CPU is right
            found.append(f"{name}:{number}: {code}")
    return found


def test_every_tensor_factory_says_where_its_tensor_lives() -> None:
    assert offending_lines() == []


def test_the_check_finds_a_device_less_factory(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "x.py").write_text(
        "a = torch.zeros(3)\nb = torch.zeros(3, device=h.device)\nc = x.cuda()\n"
        ">>> torch.ones(2)\n# cpu: indices\nd = torch.randint(4, (2,))\n"
    )
    assert offending_lines(tmp_path) == [
        "rules/x.py:1: a = torch.zeros(3)",
        "rules/x.py:3: .cuda(): c = x.cuda()",
    ]

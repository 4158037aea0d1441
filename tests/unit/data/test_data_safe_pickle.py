from __future__ import annotations

import os
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from beyond_backprop.data.cifar10 import CIFAR_GLOBALS
from beyond_backprop.data.safe_pickle import NUMPY_ARRAY_GLOBALS, restricted_loads
from beyond_backprop.errors import DataError


def test_rejects_os_system_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    with pytest.raises(DataError, match=r"evil\.pkl.*forbidden global os\.system"):
        restricted_loads(payload, NUMPY_ARRAY_GLOBALS, source="evil.pkl")
    assert not marker.exists()


class _Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("true",))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_rejects_reduce_exploit_at_every_protocol(protocol: int) -> None:
    payload = pickle.dumps(_Exploit(), protocol=protocol)
    with pytest.raises(DataError, match="forbidden global"):
        restricted_loads(payload, NUMPY_ARRAY_GLOBALS, source="x.pkl")


def test_loads_numpy_arrays_with_numpy1_and_numpy2_names(fakes: SimpleNamespace) -> None:
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    for payload in (pickle.dumps(arr, protocol=3), fakes.py2_style(pickle.dumps(arr, protocol=3))):
        out = restricted_loads(payload, NUMPY_ARRAY_GLOBALS, source="a.pkl")
        assert isinstance(out, np.ndarray)
        np.testing.assert_array_equal(out, arr)
    assert b"numpy.core.multiarray" in fakes.py2_style(pickle.dumps(arr, protocol=3))


def test_codecs_encode_only_where_allowed() -> None:
    payload = pickle.dumps({b"data": b"\x00\xff"}, protocol=2)
    assert restricted_loads(payload, CIFAR_GLOBALS, source="b.pkl") == {b"data": b"\x00\xff"}
    with pytest.raises(DataError, match=r"_codecs\.encode"):
        restricted_loads(payload, NUMPY_ARRAY_GLOBALS, source="b.pkl")


def test_truncated_or_invalid_pickle_is_a_data_error() -> None:
    payload = pickle.dumps(np.zeros(100), protocol=2)[:50]
    with pytest.raises(DataError, match=r"t\.pkl is not a valid dataset pickle \(pickle data"):
        restricted_loads(payload, NUMPY_ARRAY_GLOBALS, source="t.pkl")
    bad_dtype = b"cnumpy\ndtype\n(S'zz9'\ntR."
    with pytest.raises(DataError, match=r"d\.pkl cannot be unpickled \(TypeError.*corrupted"):
        restricted_loads(bad_dtype, NUMPY_ARRAY_GLOBALS, source="d.pkl")

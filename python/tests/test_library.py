"""Loading the library, the declared prototypes, errors, version, threads."""
import ctypes
import os
import pickle
import re
import subprocess
import sys

import pytest

import convvae
from convvae import ConvVAEError, Status, _native
import helpers


def header_text():
    if not os.path.exists(helpers.HEADER):
        pytest.skip("include/convvae.h not found (installed package)")
    with open(helpers.HEADER) as f:
        return f.read()


def test_library_loaded_from_env_var():
    env = os.environ.get("CONVVAE_LIBRARY")
    if not env:
        pytest.skip("CONVVAE_LIBRARY is not set")
    assert convvae.library_path == env


def test_library_candidates_order(tmp_path):
    # The explicit variable wins and is the only candidate.
    assert _native.library_candidates({"CONVVAE_LIBRARY": "/x/lib.so"}, str(tmp_path)) == [
        ("CONVVAE_LIBRARY", "/x/lib.so")]
    # Without it: the system loader only, unless a copy sits next to the package.
    only = _native.library_candidates({}, str(tmp_path))
    assert [o for o, _ in only] == ["loader"]
    soname = only[0][1]
    assert soname.startswith("libconvvae") or soname == "convvae.dll"
    (tmp_path / soname).write_bytes(b"")
    both = _native.library_candidates({"CONVVAE_LIBRARY": ""}, str(tmp_path))
    assert both == [("package", str(tmp_path / soname)), ("loader", soname)]


def test_bad_library_path_is_a_clear_import_error(tmp_path):
    env = dict(os.environ, CONVVAE_LIBRARY=str(tmp_path / "missing.so"))
    code = "import sys; sys.path.insert(0, %r); import convvae" % os.path.dirname(
        os.path.dirname(convvae.__file__))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode != 0
    assert "ImportError" in r.stderr and "CONVVAE_LIBRARY" in r.stderr


def test_every_public_function_is_declared():
    text = header_text()
    public = set(re.findall(r"CVAE_API\b[^;(]*?\b(cvae_\w+)\s*\(", text))
    declared = {name for name, _, _ in _native.PROTOTYPES}
    assert len(public) > 80
    assert public - declared == set(), "missing prototypes"
    assert declared - public == set(), "prototypes of functions the header lacks"


def test_prototypes_are_applied():
    for name, restype, argtypes in _native.PROTOTYPES:
        f = getattr(_native.lib, name)
        assert f.argtypes == argtypes, name
        if restype is _native.STATUS:
            assert f.restype is ctypes.c_int and f.errcheck is _native._errcheck, name
        else:
            assert f.restype is restype, name


def test_argument_counts_match_header():
    text = re.sub(r"/\*.*?\*/", "", header_text(), flags=re.S)
    for m in re.finditer(r"CVAE_API\b[^;(]*?\b(cvae_\w+)\s*\(([^)]*)\)", text):
        name, params = m.group(1), m.group(2).strip()
        n = 0 if params in ("", "void") else params.count(",") + 1
        assert len(getattr(_native.lib, name).argtypes) == n, name


def test_status_values_match_header():
    text = header_text()
    found = dict((name, int(v)) for name, v in re.findall(r"\b(CVAE_(?:OK|E_\w+))\s*=\s*(\d+)", text))
    assert found == {s.c_name: s.value for s in Status}


def test_version():
    assert re.fullmatch(r"\d+\.\d+\.\d+", convvae.library_version())
    major, minor, patch = map(int, convvae.library_version().split("."))
    assert convvae.library_version_number() == (major << 16) | (minor << 8) | patch
    assert major == _native.ABI_MAJOR
    if os.path.exists(helpers.HEADER):
        text = header_text()
        want = [int(re.search(r"#define CVAE_VERSION_%s (\d+)" % k, text).group(1))
                for k in ("MAJOR", "MINOR", "PATCH")]
        assert [major, minor, patch] == want


def test_strerror():
    assert convvae.strerror(0) == "success"
    assert convvae.strerror(Status.INVALID_ARG) == "invalid argument"
    assert convvae.strerror(Status.CANCELLED) == "cancelled by callback"
    assert convvae.strerror(12345) == "unknown status"


def test_threads():
    before = convvae.get_num_threads()
    try:
        convvae.set_num_threads(2)
        assert convvae.get_num_threads() == 2
        with pytest.raises(ConvVAEError) as e:
            convvae.set_num_threads(0)
        assert e.value.name == "CVAE_E_INVALID_ARG"
        assert convvae.get_num_threads() == 2
    finally:
        convvae.set_num_threads(before)


def test_error_carries_name_code_and_last_error():
    with pytest.raises(ConvVAEError) as e:
        convvae.set_num_threads(-3)
    err = e.value
    assert err.status == 1 and err.status == Status.INVALID_ARG
    assert err.name == "CVAE_E_INVALID_ARG"
    assert "-3" in err.message
    assert err.message == convvae.last_error()
    assert str(err) == "CVAE_E_INVALID_ARG: " + err.message
    again = pickle.loads(pickle.dumps(err))
    assert (again.status, again.name, again.message) == (err.status, err.name, err.message)
    assert ConvVAEError(99).name == "CVAE_STATUS_99"


def test_c_int_overflow_is_not_wrapped():
    # 2**32 + 1 would reach C as 1 (valid) if ctypes truncated silently.
    with pytest.raises(ConvVAEError) as e:
        convvae.set_num_threads(2 ** 32 + 1)
    assert e.value.name == "CVAE_E_INVALID_ARG"
    with pytest.raises(TypeError):
        convvae.set_num_threads(2.0)

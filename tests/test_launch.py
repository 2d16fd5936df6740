import subprocess
import sys


def test_dnax_launch_wraps_composers_launcher():
    out = subprocess.run([sys.executable, "-m", "dnax.launch", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    assert "--nproc" in out.stdout and "--world_size" in out.stdout

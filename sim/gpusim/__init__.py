"""gpu-sim: the simulated NVIDIA host this project is tested on.

Replaces exactly the NVIDIA driver's user-space pieces (libnvidia-ml.so.1, the container
runtime hook, the driver / fabric manager / toolkit packages) and nothing above them; see
sim/README.md.
"""

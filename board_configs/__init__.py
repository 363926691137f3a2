"""Board descriptions: one validated YAML per board (FPGA part and limits, CPU and TVM target, SSH/RPC)."""

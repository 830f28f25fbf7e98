"""Latency probes on the local machine (torch imported lazily, inside the functions that need it).

  micro.py       hardware microprobes -> MeasuredRates
  arch_probe.py  truncated random-weight model, timed layer by layer, extrapolated -> LatencyMeasurement
  real_model.py  real weights from a local folder or an MLflow model -> LatencyMeasurement
  api.py         local_calibration() / microprobe_rates() / probe_real_model(), with the JSON cache
"""

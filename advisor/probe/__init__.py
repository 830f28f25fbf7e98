"""Latency probes on the local machine (torch imported lazily, inside the functions that need it).

  micro.py       hardware microprobes -> MeasuredRates
  arch_probe.py  truncated random-weight model, timed layer by layer, extrapolated -> LatencyMeasurement
                 (its parts: arch_config knobs, sampling policy, arch_sampler, arch_timing, extrapolate)
  machine_load.py  whether other processes compete for the CPU (busy notes, no caching)
  real_model.py  real weights from a local folder or an MLflow model -> LatencyMeasurement
  api.py         local_calibration() / microprobe_rates() / probe_real_model(), with the JSON cache
"""

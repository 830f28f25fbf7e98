"""Capacity planning: how much load one replica of a serving engine sustains within latency SLOs, and
how many replicas (GPUs, dollars) a traffic level needs.

simulate   a discrete-event simulation of one replica (continuous batching, chunked or separate
           prefills, a KV pool that makes requests wait, Poisson / deterministic / closed-loop arrivals)
replica    binds the serving-engine model of advisor.estimate (step times, prefill, KV pool) to it
plan       the highest rate within the SLOs by bisection, then replicas, GPUs, USD/h and the bound
vllm_cmd   the vLLM command line of one replica
"""

"""`advisor profile`: the hardware the advisor sees here, or a named hardware.yaml target."""

from __future__ import annotations

import click

from advisor.cli.common import catalog_option, console, human_bytes, json_option, print_json


@click.command("profile")
@json_option
@click.option("--target", "target_id", metavar="ID",
              help="Show a named hardware.yaml target instead ('local' = this machine).")
@click.option("--no-torch", is_flag=True, help="Do not import torch (faster); torch backends go unchecked.")
@catalog_option
def profile(as_json: bool, target_id: str | None, no_torch: bool, catalog_paths: tuple[str, ...]):
    """Show the local hardware (GPUs, CPU, RAM, torch), or a named target.

    \b
    GPUs are read with NVML, the host with psutil; nothing is run on the GPU.
    ADVISOR_HARDWARE_FIXTURE=file.json shows a recorded profile instead.

    \b
    Examples:
      advisor profile
      advisor profile --json > this-machine.json
      advisor profile --target h100-sxm-80gb
      advisor profile --no-torch
    """
    from advisor.hardware.profile import detect_profile, restrict_targets, target_profile

    target = None
    if target_id and target_id != "local":
        from advisor.catalog.loader import get_catalog

        target = get_catalog(catalog_paths).target(target_id)
        prof = target_profile(target)
    else:
        prof = detect_profile(include_torch=not no_torch)
        known, why = _known_target_ids(catalog_paths)
        if known is not None:
            prof = restrict_targets(prof, known)
        elif prof.gpus:
            prof.notes.append(f"catalog not loaded, so GPU targets are unchecked names: {why}")
    if as_json:
        print_json(prof)
    else:
        render(prof, no_torch=no_torch, target=target)


def _known_target_ids(catalog_paths: tuple[str, ...]) -> tuple[set[str] | None, str | None]:
    """Target ids of the loaded catalog, so a GPU is only matched to a target that exists.

    A broken catalog must not stop `profile` (it is how users debug their setup), unless they
    named the catalog with --catalog.
    """
    from advisor.catalog.loader import get_catalog
    from advisor.errors import AdvisorError

    try:
        return set(get_catalog(catalog_paths).targets), None
    except AdvisorError as exc:
        if catalog_paths:
            raise
        return None, exc.one_line()


def _gb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e9:.1f} GB"


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


def _torch_line(prof, no_torch: bool) -> str:
    t = prof.torch
    if t is None:
        return "torch: not recorded"
    if not t.installed:
        return "torch: not installed (probes unavailable)"
    if t.error:
        return f"torch {t.version or '?'}: unusable"
    if t.backends_checked is False:
        return f"torch {t.version or '?'}: backends not checked" + (" (--no-torch)" if no_torch else "")
    cuda = f"CUDA {t.cuda_version} on {t.device_count} device(s)" if t.cuda_available else "CUDA: no"
    bf16 = f", bf16 {_yes_no(t.bf16_supported)}" if t.cuda_available else ""
    return f"torch {t.version}: {cuda}{bf16}, MPS: {_yes_no(t.mps_available)}"


def render(prof, no_torch: bool = False, target=None) -> None:
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    out = console()
    head = [f"source: {prof.source}" + (f" ({prof.target_id})" if prof.target_id else "")
            + f"   fingerprint: {prof.fingerprint}"]
    if prof.hostname or prof.os:
        head.append(f"host: {prof.hostname or '-'}   OS: {prof.os or '-'}   Python: {prof.python or '-'}")
    if prof.driver_version or prof.cuda_driver_version:
        head.append(f"NVIDIA driver {prof.driver_version or '-'}   CUDA driver {prof.cuda_driver_version or '-'}")
    out.print(Panel(Text("\n".join(head)), title="Hardware profile", expand=False))

    if prof.gpus:
        from rich import box

        table = Table(title=f"GPUs ({prof.gpu_count})", title_justify="left", box=box.SIMPLE_HEAD,
                      pad_edge=False)
        table.add_column("#")
        table.add_column("name", min_width=14, ratio=1)
        show_mig = any(g.mig_mode for g in prof.gpus)  # a column of "no" says nothing
        for col in ("memory", "cc / arch", "peak BW", "power") + (("MIG",) if show_mig else ()):
            table.add_column(col, no_wrap=True)
        table.add_column("target", no_wrap=True)
        for g in prof.gpus:
            table.add_row(
                str(g.index), Text(g.name or "?"), _gb(g.memory_total_bytes),
                f"{g.compute_capability or '-'} {g.architecture or ''}".strip(),
                f"{g.peak_bandwidth_gbs:.0f} GB/s" if g.peak_bandwidth_gbs else "-",
                f"{g.power_limit_w:.0f} W" if g.power_limit_w else "-",
                *((_yes_no(g.mig_mode),) if show_mig else ()), g.matched_target or "-")
        out.print(table)
    else:
        out.print("GPUs: none")

    c = prof.cpu
    cpu_lines = []
    if c.model_name or c.logical_cores:
        cores = f"{c.physical_cores or '?'} physical / {c.logical_cores or '?'} logical cores"
        if c.usable_cores and c.logical_cores and c.usable_cores < c.logical_cores:
            cores += f" ({c.usable_cores} usable)"
        cpu_lines.append(f"CPU: {c.model_name or '?'}" + (f" ({c.architecture})" if c.architecture else "")
                         + (f", {cores}" if c.logical_cores else "")
                         + (f", up to {c.max_frequency_mhz:.0f} MHz" if c.max_frequency_mhz else ""))
    if c.ram_total_bytes:
        ram = f"RAM: {human_bytes(c.ram_total_bytes)} total"
        if c.ram_available_bytes:
            ram += f", {human_bytes(c.ram_available_bytes)} available"
        if c.memory_limit_bytes:
            ram += f", limited to {human_bytes(c.memory_limit_bytes)} (cgroup)"
        if c.memory_bandwidth_gbs:
            ram += f", {c.memory_bandwidth_gbs:.0f} GB/s"
        cpu_lines.append(ram)
    if c.flags:
        cpu_lines.append("CPU features: " + " ".join(c.flags))
    if target is not None:
        peaks = ", ".join(f"{k} {v:g}" for k, v in target.peak_tflops.items())
        cpu_lines += [f"peak TFLOPS: {peaks or '-'}", f"source: {target.source}"]
    else:
        cpu_lines.append(_torch_line(prof, no_torch))
    if cpu_lines:
        out.print(Text("\n".join(cpu_lines)))

    if prof.notes:
        out.print("Notes:")
        notes = Table.grid(padding=(0, 1))  # a grid keeps wrapped lines under their bullet
        notes.add_column(no_wrap=True)
        notes.add_column()
        for n in prof.notes:
            notes.add_row("  -", Text(n))
        out.print(notes)

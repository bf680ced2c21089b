"""What a timing or memory number was measured on: GPU (via torch and NVML) or CPU, and software versions."""
from __future__ import annotations

import os
import platform
import sys

import torch


def cpu_model() -> str:
    """The CPU's marketing name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _host_memory() -> tuple[int | None, int | None]:
    """(total, available) host memory in bytes: psutil where installed, else ``os.sysconf`` (Linux), else
    None (the GPU campaign runs where psutil may be missing)."""
    try:
        import psutil

        vm = psutil.virtual_memory()
        return int(vm.total), int(vm.available)
    except ImportError:
        pass
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        return int(os.sysconf("SC_PHYS_PAGES") * page), int(os.sysconf("SC_AVPHYS_PAGES") * page)
    except (ValueError, OSError, AttributeError):
        return None, None


def host_memory_available() -> int | None:
    """Host memory available now (bytes), None where unknown."""
    return _host_memory()[1]


def _physical_cores() -> int | None:
    try:
        import psutil

        return psutil.cpu_count(logical=False)
    except ImportError:
        return None


def _nvml_handle(pynvml, device: torch.device):
    """The NVML handle of a torch CUDA device (by UUID, as CUDA_VISIBLE_DEVICES may renumber devices)."""
    props = torch.cuda.get_device_properties(device)
    uuid = getattr(props, "uuid", None)
    if uuid is not None:
        for text in (str(uuid), f"GPU-{uuid}"):
            try:
                return pynvml.nvmlDeviceGetHandleByUUID(text)
            except pynvml.NVMLError:
                pass
    return pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)


def nvml_memory_used(device: torch.device) -> int | None:
    """Device memory in use on the whole GPU (bytes) according to NVML; None without NVML."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetMemoryInfo(_nvml_handle(pynvml, device)).used)
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no driver / no NVML library: the torch numbers still stand
        return None


def _gpu_info(device: torch.device) -> dict:
    props = torch.cuda.get_device_properties(device)
    info = {
        "name": props.name,
        "index": device.index if device.index is not None else torch.cuda.current_device(),
        "total_memory_bytes": int(props.total_memory),
        "compute_capability": f"{props.major}.{props.minor}",
        "multiprocessors": int(props.multi_processor_count),
        "torch_cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version(),
    }
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            handle = _nvml_handle(pynvml, device)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            driver_cuda = pynvml.nvmlSystemGetCudaDriverVersion()
            info.update({
                "driver_version": _text(pynvml.nvmlSystemGetDriverVersion()),
                "driver_cuda_version": f"{driver_cuda // 1000}.{driver_cuda % 1000 // 10}",
                "nvml_name": _text(pynvml.nvmlDeviceGetName(handle)),
                "nvml_total_bytes": int(mem.total),
                "nvml_used_bytes": int(mem.used),
            })
        finally:
            pynvml.nvmlShutdown()
    except Exception as exc:  # keep the torch facts when NVML is missing
        info["nvml_error"] = str(exc)
    return info


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def hardware_info(device: torch.device | str | None = None) -> dict:
    """A JSON-able description of the device (GPU facts when ``device`` is CUDA) and the software stack."""
    from importlib.metadata import PackageNotFoundError, version

    import numpy

    def pkg_version(name: str) -> str:
        try:
            return version(name)  # without importing the package (hippynn's import takes seconds)
        except PackageNotFoundError:
            return "unknown"

    device = torch.device(device or "cpu")
    info = {
        "device": device.type,
        "device_name": device_name(device),
        "cpu": {
            "model": cpu_model(),
            "logical_cores": os.cpu_count(),
            "physical_cores": _physical_cores(),
            "torch_threads": torch.get_num_threads(),
            "memory_bytes": _host_memory()[0],
        },
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "hippynn": pkg_version("hippynn"),
        "ase": pkg_version("ase"),
        "numpy": numpy.__version__,
        "cuda_available": torch.cuda.is_available(),
    }
    if device.type == "cuda":
        info["gpu"] = _gpu_info(device)
    return info


def device_name(device: torch.device | str) -> str:
    """GPU name, or the CPU model for the CPU device."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


def device_memory_bytes(device: torch.device | str) -> int:
    """Total memory of a CUDA device (bytes), or of the machine for the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    return int(_host_memory()[0])

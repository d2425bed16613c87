"""CUDA-graph capture: warm up on a side stream, then record one call.

A captured call replays the same kernels on the same memory: its inputs live in static buffers
that are refilled in place before each replay, and what it returns is overwritten by the next one.
"""

import torch


def side_stream():
    """A stream for warm-up calls; None without CUDA."""
    return torch.cuda.Stream() if torch.cuda.is_available() else None


def on_side_stream(fn, stream):
    """fn() on the side stream, ordered after the current stream's work and before what follows.
    Warm-up calls run this way so that lazy initialisation, autotuning and their allocations stay
    off the stream a capture records (PyTorch's documented warm-up); reuse one stream for all the
    warm-up calls of a capture. With stream None (no CUDA), just fn()."""
    if stream is None:
        return fn()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        out = fn()
    torch.cuda.current_stream().wait_stream(stream)
    return out


def capture(fn, warmup: int = 1, generators=()) -> tuple[torch.cuda.CUDAGraph, object]:
    """(graph, what the captured call returned): fn run warmup times on a side stream, then
    recorded once (the recording itself runs nothing). generators: the torch.Generator objects
    fn draws from besides CUDA's default one; each replay then continues their streams exactly
    as an eager call would."""
    if not torch.cuda.is_available():
        raise RuntimeError("fastinfo.graphs.capture records a CUDA graph: it needs a CUDA GPU, and none is available")
    stream = side_stream()
    for _ in range(warmup):
        on_side_stream(fn, stream)
    graph = torch.cuda.CUDAGraph()
    for gen in generators:
        graph.register_generator_state(gen)
    with torch.cuda.graph(graph):
        out = fn()
    return graph, out

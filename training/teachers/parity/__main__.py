"""python -m training.teachers.parity faceapi|human [--write-reference] [--weights PATH]"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from .. import default_cache, get_teacher
from . import compare, fixed_inputs, package_dir, run_tfjs, torch_outputs, write_reference


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description="Compare a torch teacher with its original tfjs runtime.")
    parser.add_argument("teacher", choices=["faceapi", "human"])
    parser.add_argument("--weights", type=Path, default=None, help="safetensors to test (default: the committed)")
    parser.add_argument("--write-reference", action="store_true", help="save tfjs' outputs under references/")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    spec = get_teacher(args.teacher)
    cache = default_cache()
    names, images = fixed_inputs(spec.input_size)
    package = package_dir(args.teacher, cache)
    reference = run_tfjs(args.teacher, package, images, cache)
    ours = torch_outputs(args.teacher, images, args.weights)
    report = {"teacher": args.teacher, "runtime": reference["runtime"], **compare(reference, ours)}
    ref_logits = np.asarray(reference["logits"])
    per_input = np.abs(ref_logits - ours["logits"]).max(-1)
    for k, name in enumerate(names):
        top_ref, top_ours = spec.classes[ref_logits[k].argmax()], spec.classes[ours["logits"][k].argmax()]
        print(f"{name:16s} tfjs top-1 {top_ref:10s} torch top-1 {top_ours:10s} max |logit diff| {per_input[k]:.2e}")
    print(json.dumps(report, indent=2))
    if args.write_reference:
        path = write_reference(args.teacher, names, images, reference, spec.source)
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    return report


if __name__ == "__main__":
    main()

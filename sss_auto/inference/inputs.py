"""Find the cases of a prediction input: a folder of `<case>_XXXX.nii.gz`, plain `<case>.nii.gz`, or one file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sss_auto.dataset.raw import Case, check_case_id, split_channel_name
from sss_auto.errors import DatasetError


@dataclass(frozen=True)
class InputProblem:
    """A case that cannot be predicted, and why (the message names the file)."""

    case_id: str
    message: str


def find_input_cases(source: Path, num_channels: int, file_ending: str = ".nii.gz") -> tuple[list[Case], list[InputProblem]]:
    """Group input files into cases; return the usable cases and the problems of the others.

    Raises:
        DatasetError: the input does not exist, or a folder holds no image.
    """
    source = Path(source)
    if source.is_file():
        files = [source]
    elif source.is_dir():
        files = sorted(p for p in source.iterdir() if p.name.endswith(file_ending) and not p.name.startswith("."))
        if not files:
            raise DatasetError(f"{source}: no {file_ending} image in the input folder")
    else:
        raise DatasetError(f"{source}: input not found")
    channels: dict[str, dict[int, Path]] = {}
    problems: list[InputProblem] = []
    for path in files:
        if not path.name.endswith(file_ending):
            raise DatasetError(f"{path}: not a {file_ending} file")
        case_id, channel = split_channel_name(path.name, file_ending)
        if channel is None:  # case_id is the whole stem here
            if num_channels != 1:
                last = f"{case_id}_{num_channels - 1:04d}{file_ending}"
                problems.append(InputProblem(case_id, f"{path}: the model needs {num_channels} channels; name files "
                                                      f"{case_id}_0000{file_ending} ... {last}"))
                continue
            channel = 0
        try:
            check_case_id(case_id, path)
        except DatasetError as err:
            problems.append(InputProblem(case_id, str(err)))
            continue
        if channel in channels.setdefault(case_id, {}):
            problems.append(InputProblem(case_id, f"{path}: channel {channel} of case {case_id} given twice "
                                                  f"(also {channels[case_id][channel].name})"))
            continue
        channels[case_id][channel] = path
    cases = []
    bad = {p.case_id for p in problems}
    for case_id, found in sorted(channels.items()):
        if case_id in bad:
            continue
        missing = sorted(set(range(num_channels)) - set(found))
        extra = sorted(set(found) - set(range(num_channels)))
        if missing:
            example = next(iter(found.values()))
            problems.append(InputProblem(case_id, f"{example.parent / f'{case_id}_{missing[0]:04d}{file_ending}'}: "
                                                  f"missing channel {missing[0]} of case {case_id} (the model needs {num_channels})"))
        elif extra:
            problems.append(InputProblem(case_id, f"{found[extra[0]]}: channel {extra[0]} but the model takes "
                                                  f"{num_channels} channel(s)"))
        else:
            cases.append(Case(case_id, tuple(found[c] for c in range(num_channels)), None, "test"))
    return cases, problems

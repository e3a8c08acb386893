"""Read and write images with SimpleITK, keeping geometry beside arrays in (z, y, x) order."""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from sss_auto.errors import DatasetError
from sss_auto.io.atomic import atomic_path


@dataclass(frozen=True)
class Geometry:
    """Where an array sits in the world.

    Attributes:
        shape: array shape (z, y, x) in voxels.
        spacing_mm: voxel size (z, y, x) in mm (reversed from SimpleITK's (x, y, z)).
        origin: SimpleITK origin, (x, y, z) in mm, as stored in the file.
        direction: SimpleITK direction cosines, row-major 3x3 flattened, as stored in the file.
    """

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Geometry:
        return cls(
            shape=tuple(int(v) for v in data["shape"]),
            spacing_mm=tuple(float(v) for v in data["spacing_mm"]),
            origin=tuple(float(v) for v in data["origin"]),
            direction=tuple(float(v) for v in data["direction"]),
        )


def _read_sitk(path: Path) -> sitk.Image:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as err:
        first_line = str(err).strip().splitlines()[-1] if str(err).strip() else "unknown reader error"
        raise DatasetError(f"{path}: cannot be read as an image ({first_line}); re-export the file") from err


def read_header(path: Path) -> Geometry:
    """Read only the geometry of an image (fast: the voxel data is not decoded)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        raise DatasetError(f"{path}: cannot be read as an image; re-export the file") from err
    return _geometry_of(path, reader.GetDimension(), reader.GetSize(), reader.GetSpacing(),
                        reader.GetOrigin(), reader.GetDirection(), reader.GetNumberOfComponents())


def _geometry_of(path: Path, dim: int, size, spacing, origin, direction, components: int) -> Geometry:
    if components != 1:
        raise DatasetError(f"{path}: has {components} components per voxel; expected a scalar image")
    if dim == 4 and size[3] == 1:
        dim, size, spacing, origin = 3, size[:3], spacing[:3], origin[:3]
        direction = tuple(direction[r * 4 + c] for r in range(3) for c in range(3))
    if dim == 2:
        size, spacing, origin = (*size, 1), (*spacing, 999.0), (*origin, 0.0)
        direction = (direction[0], direction[1], 0.0, direction[2], direction[3], 0.0, 0.0, 0.0, 1.0)
    elif dim != 3:
        raise DatasetError(f"{path}: is a {dim}D image with size {tuple(size)}; expected 3D (or 2D)")
    return Geometry(
        shape=tuple(int(s) for s in reversed(size)),
        spacing_mm=tuple(float(s) for s in reversed(spacing)),
        origin=tuple(float(o) for o in origin),
        direction=tuple(float(d) for d in direction),
    )


@dataclass(frozen=True)
class NiftiHeader:
    """The fields of a NIfTI-1 header that say where the voxel data is and how it is stored."""

    byte_order: str  # "<" or ">"
    dims: tuple[int, ...]  # dim[1..dim[0]]
    datatype: int
    bitpix: int
    vox_offset: int

    @property
    def data_bytes(self) -> int:
        return int(np.prod(self.dims, dtype=np.int64)) * self.bitpix // 8


NIFTI_FLOAT_TYPES = {16: "f4", 64: "f8"}  # NIfTI datatype codes of float32 and float64 voxels
_CHUNK_BYTES = 1 << 24


def _is_nifti(path: Path) -> bool:
    return Path(path).name.lower().endswith((".nii", ".nii.gz"))


def _open_nifti(path: Path):
    return gzip.open(path, "rb") if Path(path).name.lower().endswith(".gz") else open(path, "rb")


def read_nifti_header(path: Path) -> NiftiHeader:
    """Parse a .nii/.nii.gz header with the standard library (no SimpleITK); raises DatasetError when unreadable."""
    try:
        with _open_nifti(path) as handle:
            header = handle.read(352)
        if len(header) < 348:
            raise OSError("header shorter than 348 bytes")
        order = "<" if struct.unpack("<i", header[:4])[0] == 348 else ">"
        dims = struct.unpack(order + "8h", header[40:56])
        datatype, bitpix = struct.unpack(order + "2h", header[70:74])
        vox_offset = int(struct.unpack(order + "f", header[108:112])[0])
    except (OSError, EOFError, struct.error, gzip.BadGzipFile) as err:
        raise DatasetError(f"{path}: not a readable NIfTI file ({err}); re-export the file") from err
    if not 0 < dims[0] <= 7:
        raise DatasetError(f"{path}: not a readable NIfTI file (dim[0] = {dims[0]}); re-export the file")
    return NiftiHeader(order, tuple(int(d) for d in dims[1:1 + dims[0]]), int(datatype), int(bitpix), vox_offset)


def check_nifti_complete(path: Path) -> None:
    """Raise DatasetError when a .nii/.nii.gz file is shorter than its header says.

    SimpleITK reads a truncated .nii.gz without error and fills the missing voxels with zeros, so
    completeness is checked here: the gzip trailer's uncompressed size (or the file size of a .nii)
    must equal the header's vox_offset + voxels × bytes per voxel.
    """
    path = Path(path)
    if not _is_nifti(path):
        return
    header = read_nifti_header(path)
    expected = header.vox_offset + header.data_bytes
    try:
        if path.name.lower().endswith(".gz"):
            with open(path, "rb") as handle:
                handle.seek(-4, os.SEEK_END)
                actual = struct.unpack("<I", handle.read(4))[0]
            expected %= 2**32
        else:
            actual = path.stat().st_size
    except (OSError, struct.error) as err:
        raise DatasetError(f"{path}: not a readable NIfTI file ({err}); re-export the file") from err
    if actual < expected or (path.name.lower().endswith(".gz") and actual != expected):
        raise DatasetError(f"{path}: truncated or damaged ({actual} of {expected} bytes of image data); re-export or copy it again")


def count_nonfinite_voxels(path: Path) -> int:
    """NaN and ±Inf voxels stored in a float .nii/.nii.gz file, counted from the raw data (0 for other files).

    SimpleITK reads a NaN or Inf voxel of a NIfTI file as 0 without a word, so an array read through
    it can never show one; this reads the file's own bytes, in chunks (bounded memory).
    """
    path = Path(path)
    if not _is_nifti(path):
        return 0
    header = read_nifti_header(path)
    kind = NIFTI_FLOAT_TYPES.get(header.datatype)
    if kind is None:
        return 0  # integer voxels cannot hold NaN or Inf
    dtype = np.dtype(header.byte_order + kind)
    left, count = header.data_bytes, 0
    try:
        with _open_nifti(path) as handle:
            handle.seek(header.vox_offset)
            while left > 0:
                chunk = handle.read(min(_CHUNK_BYTES, left))
                if not chunk:
                    break
                usable = len(chunk) - len(chunk) % dtype.itemsize
                count += int(np.count_nonzero(~np.isfinite(np.frombuffer(chunk[:usable], dtype))))
                left -= len(chunk)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DatasetError(f"{path}: not a readable NIfTI file ({err}); re-export the file") from err
    return count


def refuse_nonfinite(path: Path) -> None:
    """Raise DatasetError naming the file when its stored voxels hold NaN or Inf (`count_nonfinite_voxels`)."""
    if nonfinite := count_nonfinite_voxels(path):
        raise DatasetError(f"{path}: {nonfinite} NaN/Inf voxel(s) in the file (SimpleITK would read them as 0); "
                           "replace them, e.g. with the image's minimum, and write the file again")


def read_image(path: Path) -> tuple[np.ndarray, Geometry]:
    """Read a 3D (or 2D) scalar image; a NIfTI file's NaN/Inf voxels are refused (read from its own bytes).

    Returns:
        `array`: float32 (z, y, x) as stored (2D images become (1, y, x));
        `geometry`: its Geometry.

    Raises:
        DatasetError: missing, unreadable, truncated, 4D or vector images, NaN/Inf voxels.
    """
    image = _read_sitk(path)
    check_nifti_complete(path)
    refuse_nonfinite(path)
    geometry = _geometry_of(Path(path), image.GetDimension(), image.GetSize(), image.GetSpacing(),
                            image.GetOrigin(), image.GetDirection(), image.GetNumberOfComponentsPerPixel())
    array = sitk.GetArrayFromImage(image).astype(np.float32, copy=False)
    return array.reshape(geometry.shape), geometry


def image_stem(path: Path) -> str:
    """A file's name without its image ending: `case.nii.gz` -> `case` (other files: without the last suffix)."""
    name = Path(path).name
    return name[: -len(".nii.gz")] if name.endswith(".nii.gz") else Path(path).stem


def write_image(array: np.ndarray, geometry: Geometry, path: Path) -> None:
    """Write a (z, y, x) array with `geometry` atomically; integer arrays are written as uint8/int16.

    Args:
        array: (z, y, x) array with shape equal to `geometry.shape`.
        geometry: spacing, origin and direction to restore.
        path: target file (.nii.gz and other SimpleITK formats).
    """
    if tuple(array.shape) != tuple(geometry.shape):
        raise ValueError(f"array shape {array.shape} differs from geometry shape {geometry.shape}")
    if np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.uint8 if array.min() >= 0 and array.max() < 256 else np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(reversed(geometry.spacing_mm)))
    image.SetOrigin(geometry.origin)
    image.SetDirection(geometry.direction)
    with atomic_path(Path(path)) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)


def read_image_4d(path: Path) -> tuple[np.ndarray, Geometry]:
    """Read a 4D (x, y, z, t) image such as a cine sequence.

    Returns:
        `frames`: float32 (t, z, y, x); `geometry`: the 3D geometry shared by every frame (spacing,
        origin and direction of the first three axes).

    Raises:
        DatasetError: missing, unreadable, truncated, not 4D, NaN/Inf voxels.
    """
    image = _read_sitk(path)
    check_nifti_complete(path)
    refuse_nonfinite(path)
    if image.GetDimension() != 4:
        raise DatasetError(f"{path}: expected a 4D image (x, y, z, t), found {image.GetDimension()}D")
    direction = np.array(image.GetDirection()).reshape(4, 4)[:3, :3].ravel()
    geometry = _geometry_of(Path(path), 3, image.GetSize()[:3], image.GetSpacing()[:3], image.GetOrigin()[:3],
                            tuple(direction), image.GetNumberOfComponentsPerPixel())
    return sitk.GetArrayFromImage(image).astype(np.float32, copy=False), geometry

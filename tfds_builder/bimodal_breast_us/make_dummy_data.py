"""Write ``dummy_data/``: a tiny manual folder for the builder tests (clinical and BUSI layout).

Run from the repository root: ``python -m tfds_builder.bimodal_breast_us.make_dummy_data``.
The output is deterministic. Contents:

* ``manifest.csv`` with 4 patients (2 benign, 2 malignant) and 5 pairs: PNG pairs with and
  without a mask, a JPEG pair, a DICOM B-mode (MONOCHROME2) and two dual-view screenshots
  (Fig. S1), one split by detection and one by explicit ``dual_view_boxes``.
* ``Dataset_BUSI_with_GT/`` with one benign (two masks, grey and RGB), one malignant (RGBA
  mask) and one normal image (empty mask), in BUSI's naming.
"""

from __future__ import annotations

import pathlib

import cv2
import numpy as np

DUMMY_DIR = pathlib.Path(__file__).resolve().parent / "dummy_data"
HEIGHT, WIDTH = 40, 48


def synthetic_bmode(
    rng: np.random.Generator, centre=(24, 20), axes=(9, 6)
) -> tuple[np.ndarray, np.ndarray]:
    """A speckled grey image with a dark elliptic lesion, and the lesion mask (both (H, W))."""
    rows = np.linspace(1.0, 0.6, HEIGHT)[:, None]
    image = rng.rayleigh(45.0, (HEIGHT, WIDTH)) * rows + 20
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 1, -1)
    image[mask > 0] *= 0.3
    return np.clip(image, 0, 255).astype(np.uint8), mask


def synthetic_semode(bmode: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The B-mode in grey with a colour strain map blended into a central ROI (RGB)."""
    rgb = np.repeat(bmode[..., None], 3, axis=-1)
    field = cv2.GaussianBlur(rng.uniform(0, 255, (HEIGHT, WIDTH)).astype(np.float32), (0, 0), 4)
    field = cv2.normalize(field, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    colour = cv2.cvtColor(cv2.applyColorMap(field, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    top, left, bottom, right = 6, 6, HEIGHT - 6, WIDTH - 6
    roi = rgb[top:bottom, left:right].astype(np.float32)
    blend = 0.3 * roi + 0.7 * colour[top:bottom, left:right]
    rgb[top:bottom, left:right] = blend.astype(np.uint8)
    return rgb


def dual_view(
    bmode: np.ndarray, semode: np.ndarray, pad: int = 4, gap: int = 8
) -> tuple[np.ndarray, tuple]:
    """A black screenshot with the B-mode pane left and the SE pane right; and their boxes."""
    canvas = np.zeros((HEIGHT + 2 * pad, 2 * WIDTH + gap + 2 * pad, 3), np.uint8)
    b_box = (pad, pad, pad + WIDTH, pad + HEIGHT)
    s_box = (pad + WIDTH + gap, pad, pad + 2 * WIDTH + gap, pad + HEIGHT)
    canvas[b_box[1] : b_box[3], b_box[0] : b_box[2]] = bmode[..., None]
    canvas[s_box[1] : s_box[3], s_box[0] : s_box[2]] = semode
    return canvas, (b_box, s_box)


def write_image(path: pathlib.Path, image: np.ndarray) -> None:
    """PNG/JPEG by extension; ``image`` is grey (H, W), RGB (H, W, 3) or RGBA (H, W, 4)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.ndim == 3 and image.shape[-1] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif image.ndim == 3 and image.shape[-1] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    if path.suffix == ".jpg":
        params = [cv2.IMWRITE_JPEG_QUALITY, 90]
    else:
        params = [cv2.IMWRITE_PNG_COMPRESSION, 9]
    ok, data = cv2.imencode(path.suffix, image, params)
    assert ok, path
    path.write_bytes(data.tobytes())


def write_dicom(
    path: pathlib.Path,
    pixels: np.ndarray,
    photometric: str = "MONOCHROME2",
    bits_stored: int = 8,
    num_frames: int | None = None,
    **attributes,
) -> None:
    """An uncompressed ultrasound DICOM file holding ``pixels``.

    Args:
        path: output file.
        pixels: uint8 or uint16 ``(H, W)`` grey or ``(H, W, 3)`` colour samples, with a leading
            frame axis when ``num_frames`` is given.
        photometric: the photometric interpretation the samples are in.
        bits_stored: 8, or up to 16 for uint16 samples.
        num_frames: write a multi-frame file of this many frames.
        **attributes: further DICOM attributes (``WindowCenter=...``).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"  # Ultrasound Image Storage
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = "US"
    frame_shape = pixels.shape[1:] if num_frames else pixels.shape
    dataset.Rows, dataset.Columns = frame_shape[:2]
    dataset.SamplesPerPixel = 3 if len(frame_shape) == 3 else 1
    if dataset.SamplesPerPixel == 3:
        dataset.PlanarConfiguration = 0
    if num_frames:
        dataset.NumberOfFrames = num_frames
    dataset.PhotometricInterpretation = photometric
    dataset.BitsAllocated = 8 if pixels.dtype == np.uint8 else 16
    dataset.BitsStored = bits_stored
    dataset.HighBit = bits_stored - 1
    dataset.PixelRepresentation = 0
    for name, value in attributes.items():
        setattr(dataset, name, value)
    dataset.PixelData = np.ascontiguousarray(pixels).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.save_as(path, enforce_file_format=True)


def make_clinical(root: pathlib.Path, rng: np.random.Generator) -> None:
    rows = ["patient_id,label,bmode,semode,dual_view,dual_view_boxes,mask"]

    bmode, mask = synthetic_bmode(rng)
    write_image(root / "P001/P001_1_bmode.png", bmode)
    write_image(root / "P001/P001_1_semode.png", synthetic_semode(bmode, rng))
    write_image(root / "P001/P001_1_mask.png", mask * 255)
    rows.append("P001,benign,P001/P001_1_bmode.png,P001/P001_1_semode.png,,,P001/P001_1_mask.png")

    bmode, _ = synthetic_bmode(rng, centre=(20, 22), axes=(7, 5))
    write_image(root / "P001/P001_2_bmode.jpg", bmode)
    write_image(root / "P001/P001_2_semode.jpg", synthetic_semode(bmode, rng))
    rows.append("P001,benign,P001/P001_2_bmode.jpg,P001/P001_2_semode.jpg,,,")

    bmode, mask = synthetic_bmode(rng, centre=(26, 18), axes=(10, 9))
    write_dicom(root / "P002/P002_1_bmode.dcm", bmode)
    write_image(root / "P002/P002_1_semode.png", synthetic_semode(bmode, rng))
    write_image(root / "P002/P002_1_mask.png", mask * 255)
    rows.append(
        "P002,malignant,P002/P002_1_bmode.dcm,P002/P002_1_semode.png,,,P002/P002_1_mask.png"
    )

    bmode, mask = synthetic_bmode(rng, centre=(22, 21), axes=(11, 10))
    screenshot, (b_box, _) = dual_view(bmode, synthetic_semode(bmode, rng))
    write_image(root / "P003/P003_1_dual.png", screenshot)
    whole = np.zeros(screenshot.shape[:2], np.uint8)  # mask drawn on the whole screenshot
    whole[b_box[1] : b_box[3], b_box[0] : b_box[2]] = mask * 255
    write_image(root / "P003/P003_1_mask.png", whole)
    rows.append("P003,malignant,,,P003/P003_1_dual.png,,P003/P003_1_mask.png")

    bmode, mask = synthetic_bmode(rng, centre=(25, 19), axes=(8, 6))
    screenshot, (b_box, s_box) = dual_view(bmode, synthetic_semode(bmode, rng))
    write_image(root / "P004/P004_1_dual.png", screenshot)
    write_image(root / "P004/P004_1_mask.png", mask * 255)
    boxes = ";".join(" ".join(str(v) for v in box) for box in (b_box, s_box))
    rows.append(f"P004,benign,,,P004/P004_1_dual.png,{boxes},P004/P004_1_mask.png")

    (root / "manifest.csv").write_text("\n".join(rows) + "\n")


def make_busi(root: pathlib.Path, rng: np.random.Generator) -> None:
    folder = root / "Dataset_BUSI_with_GT"
    bmode, mask = synthetic_bmode(rng)
    rgb = np.repeat(bmode[..., None], 3, axis=-1)  # BUSI images are RGB PNGs of grey content
    write_image(folder / "benign/benign (1).png", rgb)
    write_image(folder / "benign/benign (1)_mask.png", mask * 255)
    second = np.zeros_like(mask)
    cv2.circle(second, (36, 10), 4, 1, -1)
    second_rgb = np.repeat(second[..., None] * 255, 3, axis=-1)  # an RGB mask, as in BUSI
    write_image(folder / "benign/benign (1)_mask_1.png", second_rgb)

    bmode, mask = synthetic_bmode(rng, centre=(20, 22), axes=(12, 8))
    write_image(folder / "malignant/malignant (1).png", np.repeat(bmode[..., None], 3, axis=-1))
    opaque = np.full_like(mask, 255)[..., None]
    rgba = np.concatenate([np.repeat(mask[..., None] * 255, 3, axis=-1), opaque], axis=-1)
    write_image(folder / "malignant/malignant (1)_mask.png", rgba)

    bmode, _ = synthetic_bmode(rng, axes=(0, 0))
    write_image(folder / "normal/normal (1).png", np.repeat(bmode[..., None], 3, axis=-1))
    write_image(folder / "normal/normal (1)_mask.png", np.zeros_like(bmode))


def main() -> None:
    rng = np.random.default_rng(0)
    make_clinical(DUMMY_DIR, rng)
    make_busi(DUMMY_DIR, rng)


if __name__ == "__main__":
    main()

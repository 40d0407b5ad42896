"""SynthTalk identities: real face photos shipped in installed packages, made into distinct people.

The photos (scikit-image's astronaut, matplotlib's grace_hopper sample) are landmarked once with
dlib at generation time. An identity is one photo, optionally mirrored, with an anisotropic face
scale, local geometry edits (jaw width, eye spacing, nose length, mouth width and height, brow
height) applied by a landmark warp, and colour edits (skin tone in Lab inside the face, hue and
saturation of hair/background/clothes outside it, gamma). The mouth of the photo is closed and
the inner-lip landmarks collapsed to the lip line, so the animation opens it from rest.

Identities depend only on the speaker index (a person does not change with the corpus seed):
parameters come from a Halton sequence, which spreads any number of speakers over the ranges.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from imagintalk.errors import FaceError
from imagintalk.synth import landmarks as lm
from imagintalk.synth.warp import WarpBasis, coarse_fields, crop, make_warp_basis, upsample, warp_image

PHOTOS = ("astronaut", "grace_hopper")


@dataclass(frozen=True)
class IdentityRecipe:
    """How one identity is made from a photo (geometry in inter-ocular distances, IOD)."""

    name: str
    photo: str
    mirror: bool
    width: float      # face scale across (1 = photo)
    height: float     # and along
    jaw: float        # jaw points outward (+) / inward
    eyes: float       # eye and brow spacing change
    nose: float       # nose tip and nostrils down (+) / up
    mouth: float      # mouth width change (relative)
    mouth_y: float    # mouth down (+) / up
    brows: float      # brows up (+) / down
    skin_l: float     # Lab lightness shift of the face
    skin_a: float     # Lab red-green shift
    skin_b: float     # Lab yellow-blue shift
    hue: float        # hue rotation of hair/background/clothes, degrees
    saturation: float
    gamma: float
    blend: float      # share of the other photo's face texture (a morph toward it)

    def as_dict(self) -> dict:
        return asdict(self)


# (low, high) of each continuous parameter; the Halton point of a speaker is mapped onto these.
RECIPE_RANGES: dict[str, tuple[float, float]] = {
    "width": (0.84, 1.14), "height": (0.9, 1.1), "jaw": (-0.14, 0.18), "eyes": (-0.12, 0.10),
    "nose": (-0.08, 0.14), "mouth": (-0.14, 0.16), "mouth_y": (-0.06, 0.09), "brows": (-0.08, 0.08),
    "skin_l": (-24.0, 8.0), "skin_a": (-2.0, 10.0), "skin_b": (-6.0, 14.0), "hue": (-110.0, 110.0),
    "saturation": (0.6, 1.4), "gamma": (0.85, 1.2), "blend": (0.0, 0.45),
}


def identity_recipe(speaker_index: int) -> IdentityRecipe:
    """Photos alternate, mirroring alternates every two speakers, the rest is a low-discrepancy
    point (Roberts' R_d sequence: any number of speakers spread evenly over the ranges)."""
    point = _rd_point(speaker_index // len(PHOTOS), len(RECIPE_RANGES))
    values = {k: lo + float(u) * (hi - lo) for (k, (lo, hi)), u in zip(RECIPE_RANGES.items(), point,
                                                                       strict=True)}
    photo = PHOTOS[speaker_index % len(PHOTOS)]
    return IdentityRecipe(name=f"id{speaker_index:02d}", photo=photo,
                          mirror=bool((speaker_index // len(PHOTOS)) % 2), **values)


def _rd_point(index: int, dims: int) -> np.ndarray:
    """frac(0.5 + index·α), α_j = φ_d^-(j+1), φ_d the root of x^(d+1) = x + 1."""
    phi = 2.0
    for _ in range(64):
        phi = (1.0 + phi) ** (1.0 / (dims + 1))
    alpha = phi ** -np.arange(1, dims + 1, dtype=np.float64)
    return np.mod(0.5 + (index + 1) * alpha, 1.0)


@dataclass(frozen=True)
class Photo:
    image: np.ndarray       # uint8 RGB
    landmarks: np.ndarray   # (68, 2) float32 x, y
    box: tuple[float, float, float, float]  # dlib face box: left, top, right, bottom


@functools.cache
def load_photo(name: str) -> Photo:
    """The photo and its dlib face box and 68 landmarks (found once per process)."""
    if name == "astronaut":
        from skimage.data import astronaut

        image = astronaut()
    elif name == "grace_hopper":
        import matplotlib.image as mpimg
        from matplotlib import cbook

        image = np.asarray(mpimg.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    else:
        raise FaceError(name, f"unknown SynthTalk photo (have {PHOTOS})")
    image = np.ascontiguousarray(image[..., :3]).astype(np.uint8)
    detector, predictor = dlib_models()
    faces = detector(image, 1)
    if len(faces) == 0:
        raise FaceError(name, "dlib finds no face in the photo")
    face = max(faces, key=lambda r: r.width() * r.height())
    shape = predictor(image, face)
    points = np.array([(p.x, p.y) for p in shape.parts()], np.float32)
    return Photo(image, points, (face.left(), face.top(), face.right(), face.bottom()))


@functools.cache
def dlib_models():
    import dlib

    with warnings.catch_warnings():  # face_recognition_models imports pkg_resources
        warnings.simplefilter("ignore")
        import face_recognition_models as frm

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(frm.pose_predictor_model_location())


@dataclass(frozen=True)
class Identity:
    recipe: IdentityRecipe
    image: np.ndarray        # uint8 size×size×3, mouth closed at rest
    landmarks: np.ndarray    # (68, 2) float32 in the image
    iod: float               # inter-ocular distance in pixels
    basis: WarpBasis         # animation warp weights around these landmarks
    mouth_colour: np.ndarray  # RGB float32 of the mouth cavity
    teeth_colour: np.ndarray


def build_identity(recipe: IdentityRecipe, size: int, face_box_fraction: float) -> Identity:
    image, points = _photo_on_canvas(recipe.photo, recipe, size, face_box_fraction)
    iod = lm.inter_ocular(points)
    target = lm.edit_geometry(points, recipe, iod)
    image = _warp_to(image, points, target, iod)
    if recipe.blend > 0:
        other = PHOTOS[(PHOTOS.index(recipe.photo) + 1) % len(PHOTOS)]
        o_image, o_points = _photo_on_canvas(other, recipe, size, face_box_fraction)
        o_image = _warp_to(o_image, o_points, target, iod)
        image = _blend_faces(image, o_image, target, iod, recipe.blend)
    image = _recolour(image, target, iod, recipe)
    _check_detectable(image, recipe.name)
    gain = (float(np.mean(image)) / 128.0) ** 0.5
    return Identity(
        recipe=recipe, image=image, landmarks=target.astype(np.float32), iod=float(lm.inter_ocular(target)),
        basis=make_warp_basis(target, lm.kernel_widths(iod), size),
        mouth_colour=np.array(MOUTH_RGB, np.float32) * gain,
        teeth_colour=np.array(TEETH_RGB, np.float32) * gain)


def _photo_on_canvas(name: str, recipe: IdentityRecipe, size: int, fraction: float):
    """The photo, mirrored as the recipe says, mouth closed, scaled and cropped onto the canvas."""
    photo = load_photo(name)
    image, points, box = photo.image, photo.landmarks.copy(), photo.box
    if recipe.mirror:
        w = image.shape[1]
        image = np.ascontiguousarray(image[:, ::-1])
        points = lm.mirror(points, w)
        box = (w - 1 - box[2], box[1], w - 1 - box[0], box[3])
    image = _close_mouth(image, points)
    image, points = _place_on_canvas(image, points, box, recipe, size, fraction)
    return image, lm.collapse_inner_lips(points)


def _warp_to(image: np.ndarray, points: np.ndarray, target: np.ndarray, iod: float) -> np.ndarray:
    """Move ``points`` onto ``target``: a similarity for the bulk, the landmark field for the rest."""
    size = image.shape[0]
    sim, _ = cv2.estimateAffinePartial2D(points, target)
    if sim is not None and not np.allclose(sim, [[1, 0, 0], [0, 1, 0]], atol=1e-3):
        image = cv2.warpAffine(image, sim, (size, size), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT_101)
        points = (points @ sim[:, :2].T + sim[:, 2]).astype(np.float32)
    back = make_warp_basis(target, lm.kernel_widths(iod), size)
    source = back.grid + coarse_fields(back, (points - target)[None])[0]
    return np.ascontiguousarray(crop(back, warp_image(image, upsample(back, source))))


def _blend_faces(image: np.ndarray, other: np.ndarray, points: np.ndarray, iod: float,
                 weight: float) -> np.ndarray:
    """Cross-dissolve the inner face with another photo's face on the same landmarks (a morph),
    after matching its mean colour, so the result is a person neither photo shows."""
    inner = lm.face_mask(points, image.shape[:2], iod, forehead=0.0)
    a = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    b = cv2.cvtColor(other.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    core = inner > 0.9
    b += a[core].mean(0) - b[core].mean(0)
    w = (weight * inner)[..., None]
    out = cv2.cvtColor(a * (1 - w) + b * w, cv2.COLOR_LAB2RGB)
    return (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


MOUTH_RGB = (52.0, 18.0, 22.0)
TEETH_RGB = (222.0, 214.0, 196.0)


def _close_mouth(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Paint the open gap between the inner lips with the lips' own colour, feathered."""
    inner = points[lm.INNER_LIPS].astype(np.int32)
    outer = points[lm.OUTER_LIPS].astype(np.int32)
    lips = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(lips, [outer], 255)
    gap = np.zeros_like(lips)
    cv2.fillPoly(gap, [inner], 255)
    ring = (lips > 0) & (gap == 0)
    if gap.sum() == 0 or not ring.any():
        return image
    colour = np.median(image[ring], axis=0).astype(np.float32)
    soft = cv2.GaussianBlur(cv2.dilate(gap, np.ones((3, 3), np.uint8)).astype(np.float32) / 255, (0, 0), 1.5)
    out = image.astype(np.float32) * (1 - soft[..., None]) + colour * soft[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _place_on_canvas(image, points, box, recipe: IdentityRecipe, size: int, fraction: float):
    """Scale (anisotropically: the face width/height edit) and crop so dlib's box is ``fraction``
    of the frame, centred; area-resampled so a large photo does not alias."""
    left, top, right, bottom = box
    side = max(right - left, bottom - top)
    sx = fraction * size * recipe.width / side
    sy = fraction * size * recipe.height / side
    h, w = image.shape[:2]
    scaled = cv2.resize(image, (max(1, round(w * sx)), max(1, round(h * sy))),
                        interpolation=cv2.INTER_AREA if min(sx, sy) < 1 else cv2.INTER_CUBIC)
    fx, fy = scaled.shape[1] / w, scaled.shape[0] / h
    cx, cy = (left + right) / 2 * fx, (top + bottom) / 2 * fy
    shift = np.float32([[1, 0, size / 2 - cx], [0, 1, size / 2 - cy]])
    canvas = cv2.warpAffine(scaled, shift, (size, size), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT_101)
    placed = points * np.float32([fx, fy]) + np.float32([size / 2 - cx, size / 2 - cy])
    return canvas, placed.astype(np.float32)


def _recolour(image: np.ndarray, points: np.ndarray, iod: float, recipe: IdentityRecipe) -> np.ndarray:
    """Skin edits on the face and on skin-coloured pixels (neck, ears); hue and saturation edits
    on everything else (hair, background, clothes); gamma on the whole."""
    face = lm.face_mask(points, image.shape[:2], iod)
    rgb = image.astype(np.float32) / 255.0
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    skin_ref = np.median(lab[face > 0.9], axis=0)
    # Lightness counts a third: the neck in shadow is still skin.
    dist2 = (((lab - skin_ref) * np.float32([1 / 3, 1, 1])) ** 2).sum(-1)
    mask = np.maximum(face, np.exp(-dist2 / (2.0 * SKIN_LAB_RADIUS ** 2)))
    lab += mask[..., None] * np.float32([recipe.skin_l, recipe.skin_a, recipe.skin_b])
    skin = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)            # float: hue in degrees
    hsv[..., 0] = np.mod(hsv[..., 0] + recipe.hue, 360.0)
    hsv[..., 1] = np.clip(hsv[..., 1] * recipe.saturation, 0.0, 1.0)
    rest = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    out = skin * mask[..., None] + rest * (1.0 - mask[..., None])
    out = np.clip(out, 0.0, 1.0) ** recipe.gamma
    return (out * 255.0 + 0.5).astype(np.uint8)


SKIN_LAB_RADIUS = 14.0  # Lab distance within which a pixel counts as the face's skin


def _check_detectable(image: np.ndarray, name: str) -> None:
    """The production path must find this face without upsampling; refuse an identity it cannot."""
    detector, _ = dlib_models()
    if len(detector(image, 0)) != 1:
        raise FaceError(name, "identity face not found by dlib HOG at upsample 0")

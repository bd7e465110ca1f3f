"""Synthetic expression clips: a neutral face photo animated along facial action units (FACS), written as videos.

No licensed emotion database can be had everywhere, yet the pipeline must prove that it learns and ship a demo
checkpoint. This package makes clips of an expression's *onset* from one neutral photo:

1. The photo's 68 iBUG landmarks come from the project's landmark backend (dlib).
2. Each label is a prototype combination of action units (after Ekman & Friesen's EMFACS): happy = AU6+12,
   sad = AU1+4+15+17, surprise = AU1+2+5+26, fear = AU1+2+4+5+20+26, anger = AU4+5+7+23, contempt = a one-sided
   AU12+14 (disgust, merged into contempt as in BAUM-2's 7 classes, = AU9+10 with a little AU4/15), neutral = none.
   An AU moves a fixed set of landmarks by a displacement measured in inter-ocular distances (IOD), in the face's
   own frame (x along the eye line, y down the face).
3. The intensity follows a smooth onset curve over the clip: it is exactly zero before the onset starts, so a
   single early frame carries no label information, while the motion does. Per-identity and per-clip resting AU
   offsets make a single late frame ambiguous too (a resting smile is not a smile's onset).
4. The image follows the landmarks through a piecewise-affine warp on a Delaunay triangulation of the landmarks
   plus a fixed ring around the face and the photo's border (one `cv2.remap` per frame through a dense map that
   also carries the head motion). An opening mouth gets a dark cavity and upper teeth painted in.
5. Nuisances, drawn identically for every label: head motion (shift, scale, roll), blinks, lighting (gain, tint,
   gradient, gamma, flicker), blur, sensor noise, JPEG compression; the clip is then written with OpenCV's `mp4v`
   (`microx_hf.video_writer`).

Identities: the public-domain photos that ship with installed packages (`skimage.data.astronaut()`, and
matplotlib's `grace_hopper.jpg`, a U.S. Navy photograph), any folder of photos (`--faces_dir`), and cheap
variants of each (random face-shape changes, a resting expression, colour changes, a horizontal flip) so that
held-out "subjects" exist.

Labels are a demonstration, not a model of real emotion: a model trained on these clips learns landmark motion
prototypes, nothing more.

One module per job: `action_units` (the AU table and the labels' prototypes), `warp` (face geometry and the
piecewise-affine warp), `faces` (photos, landmarks, identity variants), `render` (one clip), `dataset` (a folder
of clips and the command line). The names below are the public API.

Usage:
    python -m training.synthetic --out_dir data/synthetic --clips_per_label 40 --identities 6 --num_proc 2
"""

from __future__ import annotations

from .action_units import AU_FIELDS, AU_NAMES, EXPRESSIONS, LABELS, au_combination, expression_field
from .dataset import generate_dataset, main
from .faces import (
    LEFT_EYE,
    RIGHT_EYE,
    FaceIdentity,
    builtin_faces,
    detect_landmarks,
    flip_face,
    load_faces,
    make_identities,
    make_identity,
    prepare_face,
)
from .render import FPS, RenderedClip, generate_clip, render_clip
from .warp import face_frame, mesh, to_image, warp_piecewise_affine

__all__ = [
    "AU_FIELDS",
    "AU_NAMES",
    "EXPRESSIONS",
    "FPS",
    "LABELS",
    "LEFT_EYE",
    "RIGHT_EYE",
    "FaceIdentity",
    "RenderedClip",
    "au_combination",
    "builtin_faces",
    "detect_landmarks",
    "expression_field",
    "face_frame",
    "flip_face",
    "generate_clip",
    "generate_dataset",
    "load_faces",
    "main",
    "make_identities",
    "make_identity",
    "mesh",
    "prepare_face",
    "render_clip",
    "to_image",
    "warp_piecewise_affine",
]

"""App logos: the multipart upload, safe decoding, and the stored 256×256 PNG with its preview.

governor's ``PUT /api/oauth/app/id/{clientid}/image`` takes an HTML form (``multipart/form-data``,
RFC 7578) whose field ``image`` is a PNG, JPEG or GIF, and stores it as a 256×256 PNG with a tiny
base64 preview in the app's ``logo`` (governor resizes to 256×256 and keeps an 8×8 thumbnail as a
``data:`` URI). Here:

- the format is decided by the content (the decoder that recognises the bytes, limited to PNG, JPEG and
  GIF), never by the part's ``Content-Type`` or file name;
- at most :data:`MAX_UPLOAD` bytes are accepted, and the image's dimensions are checked from its header
  before any pixel is decoded: more than :data:`MAX_PIXELS` pixels is refused (decompression bombs), and
  Pillow's own ``DecompressionBombWarning`` / ``DecompressionBombError`` are treated as refusals too;
- only the first frame of an animated GIF is used; JPEG EXIF orientation is applied; every mode
  (palette, greyscale, CMYK, 16-bit, with or without transparency) is converted to RGBA;
- the image is scaled to fit 256×256, keeping its aspect ratio, and centred on a transparent square;
- the ETag is a hash of the stored PNG's bytes, so it changes exactly when the logo does.

Pillow is imported on first use: only the upload function decodes images, and importing a handler stays
cheap (CONVENTIONS §7).
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import struct
import warnings
from dataclasses import dataclass
from email.message import Message

from .errors import InvalidRequest, PayloadTooLarge

SIZE = 256  # governor's imgSize: the stored logo is SIZE×SIZE
PREVIEW_SIZE = 8  # governor's thumbSize
MAX_UPLOAD = 2 * 1024 * 1024  # bytes of image data accepted
MAX_BODY = MAX_UPLOAD + 64 * 1024  # the whole multipart body: the image plus headers and boundaries
MAX_PIXELS = 25_000_000  # width × height decoded at most (a 100 MB RGBA bitmap)
MAX_STORED = 300_000  # the PNG must fit in one DynamoDB item (400 KB) with room to spare
TOO_LARGE = "The image is too large (at most 25 megapixels)."
FIELD = "image"
FORMATS = ("PNG", "JPEG", "GIF")
CONTENT_TYPE = "image/png"
_BOUNDARY = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$")  # RFC 2046 §5.1.1


class InvalidImage(InvalidRequest):
    """400 in the route's shape: the upload is not a usable PNG, JPEG or GIF."""

    default_description = "The image must be a PNG, JPEG or GIF file."


@dataclass(frozen=True, slots=True)
class Logo:
    """A processed logo: the SIZE×SIZE PNG, its strong ETag and the ``data:`` URI preview."""

    png: bytes
    etag: str
    preview: str


def etag_of(png: bytes) -> str:
    return '"' + hashlib.sha256(png).hexdigest()[:32] + '"'


def not_modified(etag: str, if_none_match: str | None) -> bool:
    """RFC 9110 §13.1.2: weak comparison against any listed entity tag (or ``*``)."""
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


# --- multipart/form-data (RFC 7578) --------------------------------------------------------------------
def _params(header_value: str) -> Message:
    message = Message()
    message["content-type"] = header_value
    return message


def form_file(content_type: str | None, body: bytes, field: str = FIELD) -> bytes:
    """The content of the form field ``field`` in a ``multipart/form-data`` body (RFC 7578 §4).

    Strict where it matters: the boundary must be declared and valid (RFC 2046 §5.1.1), the body must
    be closed by the final delimiter, every part needs ``Content-Disposition: form-data; name=...``, and
    the field must occur exactly once. Other fields are ignored.
    """
    if len(body) > MAX_BODY:
        raise PayloadTooLarge("The image must be at most 2 MB.")
    header = _params(content_type or "")
    if header.get_content_type() != "multipart/form-data":
        raise InvalidRequest("The request must be multipart/form-data with the image in the field 'image'.")
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not _BOUNDARY.match(boundary):
        raise InvalidRequest("The multipart boundary is missing or invalid.")
    delimiter = b"\r\n--" + boundary.encode("ascii")
    sections = (b"\r\n" + body).split(delimiter)
    # sections[0] is the preamble; the last section must start with "--" (the close delimiter)
    if len(sections) < 3 or not sections[-1].startswith(b"--"):
        raise InvalidRequest("The multipart body is malformed.")
    found: list[bytes] = []
    for section in sections[1:-1]:
        line_end = section.find(b"\r\n")
        if line_end < 0 or section[:line_end].strip(b" \t"):
            raise InvalidRequest("The multipart body is malformed.")
        head, separator, content = section[line_end + 2:].partition(b"\r\n\r\n")
        if not separator:
            if not section[line_end + 2:].startswith(b"\r\n"):  # a part with no header at all
                raise InvalidRequest("The multipart body is malformed.")
            head, content = b"", section[line_end + 4:]
        name = _part_name(head)
        if name == field:
            found.append(content)
    if len(found) != 1:
        raise InvalidRequest("The form must contain the field 'image' exactly once.")
    if len(found[0]) > MAX_UPLOAD:
        raise PayloadTooLarge("The image must be at most 2 MB.")
    return found[0]


def _part_name(head: bytes) -> str | None:
    disposition = None
    for line in head.split(b"\r\n"):
        name, colon, value = line.partition(b":")
        if not colon:
            raise InvalidRequest("The multipart body is malformed.")
        if name.strip().lower() == b"content-disposition":
            disposition = value.decode("utf-8", errors="replace").strip()
    if disposition is None:
        raise InvalidRequest("Every multipart part needs a Content-Disposition header.")
    message = Message()
    message["content-disposition"] = disposition
    if message.get_content_disposition() != "form-data":
        raise InvalidRequest("Every multipart part must be form-data.")
    name = message.get_param("name", header="content-disposition")
    return name if isinstance(name, str) else None


# --- decoding and re-encoding --------------------------------------------------------------------------
# What Pillow's decoders raise on truncated, corrupt or hostile data: any of these means "not a usable image".
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, KeyError, IndexError, TypeError, struct.error)


def process(data: bytes) -> Logo:
    """Decode ``data`` safely and re-encode it as the stored logo (raises :class:`InvalidImage`)."""
    if len(data) > MAX_UPLOAD:
        raise PayloadTooLarge("The image must be at most 2 MB.")
    if not data:
        raise InvalidImage("The image is empty.")
    from PIL import Image, ImageOps, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=FORMATS) as image:
                kind = image.format
                width, height = image.size  # read from the header: no pixel is decoded yet
                if kind not in FORMATS:
                    raise InvalidImage(detail=f"format {kind}")
                if width < 1 or height < 1 or width * height > MAX_PIXELS:
                    raise InvalidImage(TOO_LARGE, detail=f"{kind} {width}x{height}")
                if kind == "JPEG":
                    image.draft("RGB", (SIZE * 2, SIZE * 2))  # JPEG decodes at a reduced scale
                image.seek(0)  # the first frame of an animation
                image.load()
                frame = ImageOps.exif_transpose(image) if kind == "JPEG" else image
                square = _square(_rgba(frame))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise InvalidImage(TOO_LARGE, detail=f"{type(exc).__name__}: {exc}") from exc
        except UnidentifiedImageError as exc:
            raise InvalidImage(detail=f"{type(exc).__name__}: {exc}") from exc
        except _DECODE_ERRORS as exc:
            raise InvalidImage("The image could not be decoded.", detail=f"{type(exc).__name__}: {exc}") from exc
    png = _png(square)
    preview = _png(square.resize((PREVIEW_SIZE, PREVIEW_SIZE), Image.Resampling.LANCZOS))
    return Logo(png=png, etag=etag_of(png), preview="data:image/png;base64," + base64.b64encode(preview).decode())


def _rgba(image):
    """Any mode to RGBA; 16-bit and 32-bit greyscale are scaled down to 8 bits first."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        wide = image.convert("I")
        high = wide.getextrema()[1]
        image = (wide.point(lambda v: v * (1 / 256)) if high > 255 else wide).convert("L")
    return image if image.mode == "RGBA" else image.convert("RGBA")


def _square(image):
    """Fit inside SIZE×SIZE keeping the aspect ratio, centred on a transparent square."""
    from PIL import Image, ImageOps

    fitted = ImageOps.contain(image, (SIZE, SIZE), method=Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    canvas.paste(fitted, ((SIZE - fitted.width) // 2, (SIZE - fitted.height) // 2))
    return canvas


def _png(image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    data = out.getvalue()
    if len(data) > MAX_STORED:  # photographic noise: a 256-colour palette keeps the item small
        out = io.BytesIO()
        image.quantize(colors=256, method=2).save(out, format="PNG", optimize=True)  # 2: fast octree, keeps alpha
        data = out.getvalue()
    return data

"""App logos (``latchkey.logo`` and the image routes): format by content, safe decoding, re-encoding to a
256×256 PNG, the preview, the multipart form, the ETag and ``304``."""

from __future__ import annotations

import base64
import io
import os
import struct
import zlib

import pytest
from PIL import Image

from latchkey import logo
from latchkey.errors import InvalidRequest, PayloadTooLarge
from tests.unit.gov_apps_support import admin_fixture, all_items, call, create, env_fixture  # noqa: F401 - fixtures "admin", "env"

BOUNDARY = "----WebKitFormBoundaryq1w2e3r4t5y6u7i8"


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def picture(size=(640, 320), mode="RGB") -> Image.Image:
    fill = {"RGB": "white", "RGBA": "white", "LA": (255, 255), "CMYK": (0, 0, 0, 0)}.get(mode, 255)
    image = Image.new(mode, size, fill)
    if mode in ("RGB", "RGBA"):
        for x in range(size[0] // 4):
            image.putpixel((x, size[1] // 2), (200, 30, 30) + ((255,) if mode == "RGBA" else ()))
    return image


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def claimed_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` × ``height`` pixels (a decompression bomb's shape)."""
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + png_chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + png_chunk(b"IEND", b""))


def form(content: bytes, *, field="image", filename="logo.png", part_type="image/png", boundary=BOUNDARY,
         preamble=b"", extra_parts=b"") -> bytes:
    head = f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\nContent-Type: {part_type}\r\n'
    return (preamble + extra_parts + f"--{boundary}\r\n".encode() + head.encode() + b"\r\n" + content
            + f"\r\n--{boundary}--\r\n".encode())


def multipart(boundary=BOUNDARY) -> str:
    return f"multipart/form-data; boundary={boundary}"


def decoded(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


# --- process ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fmt", "mode", "options"), [
    ("PNG", "RGB", {}), ("PNG", "RGBA", {}), ("PNG", "P", {}), ("PNG", "L", {}), ("PNG", "LA", {}),
    ("PNG", "I;16", {}), ("PNG", "1", {}), ("JPEG", "RGB", {"quality": 90}), ("JPEG", "L", {}),
    ("JPEG", "CMYK", {}), ("GIF", "P", {}), ("GIF", "L", {}),
])
def test_png_jpeg_and_gif_are_reencoded_to_a_256_square_png(fmt, mode, options):
    result = logo.process(encode(picture(mode=mode), fmt, **options))
    image = decoded(result.png)
    assert image.format == "PNG" and image.size == (256, 256) and image.mode == "RGBA"
    # 640×320 fits as 256×128, centred: transparent bands above and below
    assert image.getpixel((128, 0))[3] == 0 and image.getpixel((128, 255))[3] == 0
    assert image.getpixel((128, 128))[3] == 255
    assert result.etag == logo.etag_of(result.png)
    assert result.preview.startswith("data:image/png;base64,")
    preview = decoded(base64.b64decode(result.preview.split(",", 1)[1]))
    assert preview.size == (8, 8) and preview.format == "PNG"
    assert len(result.preview) < 500


def test_small_images_are_scaled_up_and_portraits_are_padded_at_the_sides():
    image = decoded(logo.process(encode(picture((10, 40)), "PNG")).png)
    assert image.size == (256, 256)
    assert image.getpixel((0, 128))[3] == 0 and image.getpixel((128, 128))[3] == 255


def test_animated_gif_uses_the_first_frame():
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "blue", "green")]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    image = decoded(logo.process(data).png)
    red, green, blue, alpha = image.getpixel((128, 128))
    assert red > 200 and blue < 50 and alpha == 255


def test_jpeg_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    data = encode(picture((200, 100)), "JPEG", exif=exif.tobytes())
    image = decoded(logo.process(data).png)
    assert image.getpixel((128, 0))[3] == 255 and image.getpixel((0, 128))[3] == 0  # now portrait


def test_the_format_is_decided_by_the_content_not_the_name_or_type():
    with pytest.raises(logo.InvalidImage) as refused:
        logo.process(b"This is a text file that someone renamed to logo.png\n")
    assert refused.value.status == 400 and refused.value.error == "invalid_request"
    assert refused.value.description == "The image must be a PNG, JPEG or GIF file."


@pytest.mark.parametrize("data", [
    encode(picture(), "BMP"), encode(picture(), "TIFF"), encode(picture(), "WEBP"), b"%PDF-1.7\n",
    b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"\x89PNG\r\n\x1a\n" + b"\0" * 64,
])
def test_other_formats_and_garbage_are_refused(data):
    with pytest.raises(logo.InvalidImage):
        logo.process(data)


def test_truncated_images_are_refused():
    data = encode(picture(), "PNG")
    with pytest.raises(logo.InvalidImage) as refused:
        logo.process(data[: len(data) // 2])
    assert refused.value.description == "The image could not be decoded."


@pytest.mark.parametrize(("width", "height"), [(100_000, 100_000), (6000, 5000), (2**31 - 1, 1)])
def test_decompression_bombs_are_refused_before_decoding(width, height, monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", no_decoding)
    with pytest.raises(logo.InvalidImage) as refused:
        logo.process(claimed_png(width, height))
    assert refused.value.description == "The image is too large (at most 25 megapixels)."


def test_a_real_big_image_is_refused_even_when_it_compresses_well():
    data = encode(Image.new("L", (6000, 5000)), "PNG")  # 30 megapixels in ~30 KB
    assert len(data) < 100_000
    with pytest.raises(logo.InvalidImage):
        logo.process(data)


def test_pillows_own_bomb_warning_is_an_error(monkeypatch):
    monkeypatch.setattr(logo, "MAX_PIXELS", 10**12)  # only Pillow's check is left
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(logo.InvalidImage) as refused:
        logo.process(encode(picture((40, 40)), "PNG"))  # 1600 px: over the limit, under twice it (a warning)
    assert "DecompressionBombWarning" in refused.value.detail


def test_oversize_input_is_refused():
    with pytest.raises(PayloadTooLarge):
        logo.process(b"\0" * (logo.MAX_UPLOAD + 1))


def test_noise_still_fits_in_one_item():
    noise = Image.frombytes("RGBA", (512, 512), os.urandom(512 * 512 * 4))
    result = logo.process(encode(noise, "PNG"))
    assert len(result.png) <= logo.MAX_STORED and decoded(result.png).size == (256, 256)


def test_the_etag_depends_only_on_the_result():
    data = encode(picture(), "PNG")
    first, second = logo.process(data), logo.process(data)
    assert first.etag == second.etag and first.png == second.png
    assert first.etag != logo.process(encode(picture((300, 300)), "PNG")).etag
    assert first.etag.startswith('"') and len(first.etag) == 34


@pytest.mark.parametrize(("tag", "matches"), [
    ('"abc"', True), ('W/"abc"', True), ('"x", "abc"', True), ("*", True), ('"x"', False), ("", False),
    (None, False),
])
def test_not_modified(tag, matches):
    assert logo.not_modified('"abc"', tag) is matches


# --- the multipart form -------------------------------------------------------------------------------
def test_form_file_finds_the_image_field_whatever_its_part_type():
    data = encode(picture(), "PNG")
    other = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"caption\"\r\n\r\nhello\r\n").encode()
    body = form(data, part_type="image/gif", preamble=b"ignored preamble", extra_parts=b"\r\n" + other)
    assert logo.form_file(multipart(), body) == data
    assert logo.form_file('multipart/form-data; boundary="' + BOUNDARY + '"', form(data)) == data


def test_binary_content_with_crlf_and_dashes_survives():
    content = b"\r\n--" + BOUNDARY[:-1].encode() + b"\r\n\r\n\x00\xff--"
    assert logo.form_file(multipart(), form(content)) == content


@pytest.mark.parametrize(("content_type", "body"), [
    ("application/json", form(b"x")),
    ("multipart/form-data", form(b"x")),  # no boundary
    ("multipart/form-data; boundary=" + "b" * 71, form(b"x", boundary="b" * 71)),
    (multipart(), form(b"x", field="file")),  # no image field
    (multipart(), form(b"x")[: -len(f"\r\n--{BOUNDARY}--\r\n")]),  # not closed
    (multipart(), form(b"x", extra_parts=form(b"y")[: -len("--\r\n")] + b"\r\n")),  # image twice
    (multipart(), f"--{BOUNDARY}\r\nContent-Type: image/png\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode()),
    (multipart(), f"--{BOUNDARY}\r\nContent-Disposition: attachment; name=\"image\"\r\n\r\nx\r\n--{BOUNDARY}--\r\n"
     .encode()),
    (multipart(), b"garbage"),
])
def test_malformed_forms_are_400(content_type, body):
    with pytest.raises(InvalidRequest) as refused:
        logo.form_file(content_type, body)
    assert refused.value.status == 400


def test_an_oversize_image_part_is_413():
    with pytest.raises(PayloadTooLarge):
        logo.form_file(multipart(), form(b"\0" * (logo.MAX_UPLOAD + 1)))


# --- the routes ---------------------------------------------------------------------------------------
def upload(admin, client_id, content: bytes, **kwargs):
    return call("gov_app_image_update", clientid=client_id, token=admin, body=form(content, **kwargs),
                content_type=multipart())


def test_upload_then_fetch_with_etag_and_304(admin):
    client_id = create(admin)["client_id"]
    assert call("gov_app_image_get", clientid=client_id).status == 404
    before = call("gov_app_get", clientid=client_id).json()

    answer = upload(admin, client_id, encode(picture(), "JPEG"), filename="photo.gif", part_type="image/gif")
    assert (answer.status, answer.body) == (204, b"")
    app = call("gov_app_get", clientid=client_id).json()
    assert app["logo"].startswith("data:image/png;base64,") and app["time"] >= before["time"]

    image = call("gov_app_image_get", clientid=client_id)
    assert image.status == 200
    assert image.headers["Content-Type"] == "image/png"
    assert image.headers["Cache-Control"] == "public, max-age=300"
    etag = image.headers["ETag"]
    assert etag == logo.etag_of(image.body)
    assert decoded(image.body).size == (256, 256)
    for tag in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        again = call("gov_app_image_get", clientid=client_id, headers={"if-none-match": tag})
        assert (again.status, again.body) == (304, b""), tag
        assert again.headers["ETag"] == etag and again.headers["Cache-Control"] == "public, max-age=300"
        assert "Content-Type" not in again.headers
    assert call("gov_app_image_get", clientid=client_id, headers={"if-none-match": '"other"'}).status == 200

    # the same picture again: same ETag; a different one: a new ETag
    assert upload(admin, client_id, encode(picture(), "JPEG")).status == 204
    assert call("gov_app_image_get", clientid=client_id).headers["ETag"] == etag
    assert upload(admin, client_id, encode(picture((50, 50)), "GIF")).status == 204
    assert call("gov_app_image_get", clientid=client_id).headers["ETag"] != etag

    assert call("gov_app_delete", clientid=client_id, token=admin).status == 204
    assert call("gov_app_image_get", clientid=client_id).status == 404
    assert all_items() == []


@pytest.mark.parametrize(("content", "message"), [
    (b"hello, I am text\n", "The image must be a PNG, JPEG or GIF file."),
    (claimed_png(100_000, 100_000), "The image is too large (at most 25 megapixels)."),
])
def test_bad_images_are_400_in_governors_shape_and_change_nothing(admin, content, message):
    client_id = create(admin)["client_id"]
    before = call("gov_app_get", clientid=client_id).json()
    answer = upload(admin, client_id, content, filename="logo.png")
    assert answer.status == 400
    assert answer.json() == {"message": message, "code": "invalid_request",
                             "request_id": answer.headers["X-Request-Id"]}
    assert call("gov_app_get", clientid=client_id).json() == before
    assert call("gov_app_image_get", clientid=client_id).status == 404


def test_oversize_bodies_are_413(admin):
    client_id = create(admin)["client_id"]
    answer = upload(admin, client_id, b"\0" * (logo.MAX_UPLOAD + 1))
    assert answer.status == 413 and answer.json()["code"] == "invalid_request"
    answer = call("gov_app_image_update", clientid=client_id, token=admin, content_type=multipart(),
                  body=form(b"\0" * (logo.MAX_BODY + 1)))
    assert answer.status == 413


def test_upload_for_an_unknown_app_is_404_and_writes_nothing(admin):
    answer = upload(admin, "0" * 32, encode(picture(), "PNG"))
    assert answer.status == 404 and answer.json()["code"] == "not_found"
    assert all_items() == []

"""Draw Haven's application icon and write it in the formats the installers use.

    python packaging/icons/make_icons.py   # needs Pillow (not a Haven dependency: run it in any venv)

Writes haven.png (1024 px), haven.ico (Windows: 16-256 px) and haven.icns (macOS). The files are kept in
the repository, so a build needs neither Pillow nor this script.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
SIZE = 1024
BACKGROUND = (38, 84, 74, 255)    # deep green: a sheltered place
FOREGROUND = (244, 239, 226, 255)  # warm white


def draw() -> Image.Image:
    image = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)
    margin = SIZE // 10
    pen.rounded_rectangle((margin, margin, SIZE - margin, SIZE - margin), radius=SIZE // 5, fill=BACKGROUND)
    # A roof over a door: a shelter, the "haven".
    stroke = SIZE // 14
    roof = [(SIZE * 0.25, SIZE * 0.50), (SIZE * 0.50, SIZE * 0.27), (SIZE * 0.75, SIZE * 0.50)]
    pen.line(roof, fill=FOREGROUND, width=stroke, joint="curve")
    for x, y in (roof[0], roof[2]):
        pen.ellipse((x - stroke / 2, y - stroke / 2, x + stroke / 2, y + stroke / 2), fill=FOREGROUND)
    pen.rounded_rectangle((SIZE * 0.42, SIZE * 0.52, SIZE * 0.58, SIZE * 0.74), radius=SIZE // 40, fill=FOREGROUND)
    return image


def main() -> None:
    image = draw()
    image.save(HERE / "haven.png")
    image.save(HERE / "haven.ico", sizes=[(s, s) for s in (16, 24, 32, 48, 64, 128, 256)])
    image.save(HERE / "haven.icns")


if __name__ == "__main__":
    main()

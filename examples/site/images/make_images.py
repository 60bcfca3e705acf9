"""Regenerate the hero images and logo of the Northwind Engineering example site.

    python examples/site/images/make_images.py

Flat, text-free illustrations: one colour family per topic, a few shapes per post.
Output is deterministic (each image's random choices are seeded from its slug).
"""

import random
import zlib
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
W, H = 1200, 600
SCALE = 2  # draw at 2x, then downsample for smooth edges

# background, darker shade, lighter accent, highlight, ink
PALETTES = {
    "backend": ("#0f3b57", "#0b2c41", "#2a9d8f", "#8fd3c7", "#e8f4f2"),
    "ai-ml": ("#3d2a6e", "#2c1e52", "#8a63d2", "#c9b6f2", "#f3eefc"),
    "data": ("#1e5a43", "#154232", "#4caf7d", "#a8e0b8", "#eef8f1"),
    "frontend": ("#b4551c", "#8f4115", "#f2a541", "#ffd79a", "#fff4e2"),
}

POSTS = {
    "backend": [
        "raft-leader-elections-in-production",
        "pgbouncer-transaction-mode-at-scale",
        "retiring-the-big-cron",
        "graceful-shutdown-on-kubernetes",
        "hedged-requests-p99-latency",
    ],
    "ai-ml": [
        "evaluating-the-support-assistant",
        "catching-embedding-drift",
        "batch-inference-on-spot-gpus",
        "labeling-guidelines-annotators-read",
    ],
    "data": [
        "feature-stores-on-postgres",  # also in the AI & ML feed
        "backfilling-three-years-of-events",
        "data-contracts-between-teams",
        "compacting-small-parquet-files",
        "late-arriving-data-and-watermarks",
    ],
    "frontend": [
        "design-tokens-migration",
        "hydration-mismatch-field-guide",
        "accessible-date-picker",
        "inp-checkout-regressions",
        # "container-queries-in-production" has no image on purpose
    ],
}
THUMBNAILS = {"raft-leader-elections-in-production": (300, 150)}


def s(*values):
    """Scale coordinates from the 1200x600 design grid to the drawing canvas."""
    return [v * SCALE for v in values]


def backdrop(draw, rng, pal):
    bg, dark, _, _, _ = pal
    draw.rectangle(s(0, 0, W, H), fill=bg)
    cx, cy = rng.randint(850, 1100), rng.randint(-80, 120)
    draw.ellipse(s(cx - 420, cy - 420, cx + 420, cy + 420), fill=dark)
    for x in range(60, 420, 40):  # a quiet dot grid in the lower left
        for y in range(420, 580, 40):
            draw.ellipse(s(x - 3, y - 3, x + 3, y + 3), fill=dark)


def cluster(draw, rng, pal):
    """Backend: servers and nodes wired together."""
    _, dark, accent, light, ink = pal
    rack_x = rng.choice([90, 880])
    lo, hi = (380, 1040) if rack_x < 500 else (160, 820)  # keep the nodes clear of the rack
    n = rng.randint(4, 6)
    step = (hi - lo) // n
    nodes = [  # one node per vertical band, alternating high and low
        (lo + i * step + rng.randint(20, step - 20), rng.randint(110, 260) + (i % 2) * 200)
        for i in range(n)
    ]
    for a, b in zip(nodes, nodes[1:]):
        draw.line(s(*a, *b), fill=light, width=6 * SCALE)
    draw.line(s(*nodes[0], *nodes[-1]), fill=accent, width=4 * SCALE)
    leader = rng.randrange(len(nodes))
    for i, (x, y) in enumerate(nodes):
        r = 46 if i == leader else 30
        draw.ellipse(s(x - r - 8, y - r - 8, x + r + 8, y + r + 8), fill=dark)
        draw.ellipse(s(x - r, y - r, x + r, y + r), fill=ink if i == leader else accent)
    x0 = rack_x
    for i in range(3):  # a small rack of servers
        y0 = 380 + i * 52
        draw.rounded_rectangle(s(x0, y0, x0 + 220, y0 + 40), radius=10 * SCALE, fill=light)
        draw.ellipse(s(x0 + 180, y0 + 12, x0 + 196, y0 + 28), fill=accent)


def network(draw, rng, pal):
    """AI & ML: layers of neurons."""
    _, dark, accent, light, ink = pal
    sizes = [rng.randint(2, 5) for _ in range(rng.randint(3, 5))]
    xs = [260 + i * (680 // (len(sizes) - 1)) for i in range(len(sizes))]
    layers = [[(x, 300 + (j - (n - 1) / 2) * 95) for j in range(n)] for x, n in zip(xs, sizes)]
    for left, right in zip(layers, layers[1:]):
        for a in left:
            for b in right:
                draw.line(s(*a, *b), fill=accent, width=3 * SCALE)
    hot = rng.randrange(len(layers))
    for i, layer in enumerate(layers):
        for x, y in layer:
            draw.ellipse(s(x - 30, y - 30, x + 30, y + 30), fill=dark)
            draw.ellipse(s(x - 22, y - 22, x + 22, y + 22), fill=ink if i == hot else light)
    draw.arc(s(1000, 440, 1200, 640), 180, 290, fill=light, width=8 * SCALE)


def pipeline(draw, rng, pal):
    """Data: a bar chart feeding a pipeline of stages."""
    _, dark, accent, light, ink = pal
    base = 470
    for i in range(rng.randint(5, 8)):
        x = 110 + i * 62
        h = rng.randint(60, 280)
        draw.rounded_rectangle(s(x, base - h, x + 40, base), radius=8 * SCALE,
                               fill=light if i % 3 else accent)
    draw.line(s(90, base + 14, 620, base + 14), fill=ink, width=4 * SCALE)
    stages = rng.randint(2, 3)
    for i in range(stages):
        y = 140 + i * (320 // max(1, stages - 1)) if stages > 1 else 300
        draw.rounded_rectangle(s(760, y - 40, 1060, y + 40), radius=20 * SCALE, fill=dark)
        draw.rounded_rectangle(s(776, y - 26, 776 + rng.randint(90, 260), y + 26),
                               radius=14 * SCALE, fill=accent if i % 2 else light)
        draw.line(s(640, 300, 760, y), fill=light, width=5 * SCALE)
    draw.ellipse(s(610, 270, 670, 330), fill=ink)


def wireframe(draw, rng, pal):
    """Frontend: a browser window with a card layout."""
    _, dark, accent, light, ink = pal
    x0, y0, x1, y1 = 190, 90, 1010, 520
    draw.rounded_rectangle(s(x0 + 14, y0 + 14, x1 + 14, y1 + 14), radius=24 * SCALE, fill=dark)
    draw.rounded_rectangle(s(x0, y0, x1, y1), radius=24 * SCALE, fill=ink)
    draw.rounded_rectangle(s(x0, y0, x1, y0 + 56), radius=24 * SCALE, fill=light)
    draw.rectangle(s(x0, y0 + 30, x1, y0 + 56), fill=light)
    for i, colour in enumerate((dark, accent, accent)):
        draw.ellipse(s(x0 + 24 + i * 30, y0 + 20, x0 + 40 + i * 30, y0 + 36), fill=colour)
    cols = rng.choice([2, 3, 4])
    gap, top = 24, y0 + 90
    width = (x1 - x0 - 60 - gap * (cols - 1)) // cols
    for c in range(cols):
        cx = x0 + 30 + c * (width + gap)
        tall = rng.randint(150, 300)
        draw.rounded_rectangle(s(cx, top, cx + width, top + tall), radius=14 * SCALE, fill=light)
        draw.rounded_rectangle(s(cx + 16, top + 16, cx + width - 16, top + 80),
                               radius=10 * SCALE, fill=accent)
        draw.line(s(cx + 16, top + 110, cx + width - 40, top + 110), fill=dark, width=6 * SCALE)


MOTIFS = {"backend": cluster, "ai-ml": network, "data": pipeline, "frontend": wireframe}


def hero(topic, slug):
    rng = random.Random(zlib.crc32(slug.encode()))
    pal = PALETTES[topic]
    img = Image.new("RGB", (W * SCALE, H * SCALE))
    draw = ImageDraw.Draw(img)
    backdrop(draw, rng, pal)
    MOTIFS[topic](draw, rng, pal)
    return img.resize((W, H), Image.LANCZOS)


def save_png(img, path, colours=24):
    img.quantize(colors=colours, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def logo(navy=(31, 58, 95, 255), name="logo.png"):
    """A compass ring around a geometric N, navy on transparent, 240x64 (and a light one for
    dark backgrounds)."""
    k = 4
    img = Image.new("RGBA", (240 * k, 64 * k), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    cx, cy, r = 32 * k, 35 * k, 25 * k
    d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=navy, width=4 * k)
    d.polygon([(cx, 0), (cx - 7 * k, 11 * k), (cx + 7 * k, 11 * k)], fill=navy)  # north pointer
    left, right, top, bottom, bar = cx - 12 * k, cx + 12 * k, cy - 12 * k, cy + 12 * k, 6 * k
    d.rectangle((left, top, left + bar, bottom), fill=navy)
    d.rectangle((right - bar, top, right, bottom), fill=navy)
    d.polygon([(left, top), (left + bar, top), (right, bottom), (right - bar, bottom)], fill=navy)
    for i, length in enumerate((150, 118, 86)):  # three bearing lines trailing to the east
        y = (23 + i * 12) * k
        d.rounded_rectangle((76 * k, y, (76 + length) * k, y + 5 * k), radius=3 * k, fill=navy)
    img.resize((240, 64), Image.LANCZOS).save(HERE / name, optimize=True)


def main():
    for topic, slugs in POSTS.items():
        for slug in slugs:
            img = hero(topic, slug)
            save_png(img, HERE / f"{slug}.png")
            if slug in THUMBNAILS:
                save_png(img.resize(THUMBNAILS[slug], Image.LANCZOS), HERE / f"{slug}-thumb.png")
    logo()
    logo((203, 221, 245, 255), "logo-dark.png")
    for path in sorted(HERE.glob("*.png")):
        print(f"{path.stat().st_size:>7}  {path.name}")


if __name__ == "__main__":
    main()

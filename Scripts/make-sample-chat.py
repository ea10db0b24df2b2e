#!/usr/bin/env python3
"""Generate a chat app's data directory, deterministically, for demos and benchmarks.

    make-sample-chat.py --out DIR [--scale S] [--seed N]      create DIR (must be absent or empty)
    make-sample-chat.py --out DIR --advance-day N [--seed N]  change DIR as day N of use would

Scale 1 is about 25 MiB; scale 40 about 1 GiB. Only the Python standard library is used.

Layout (sizes and counts grow with --scale):

    DIR/messages.db                 SQLite: chats, messages(id, chat_id, sender, ts, body, read,
                                    edited), counters; about a seventh of the bytes
    DIR/Media/Images/*.jpg          JPEG header + random bytes (incompressible)
    DIR/Media/Video/*.mp4           MP4 boxes + random bytes, the largest files
    DIR/Media/Voice Notes/*.opus    small Ogg/Opus-looking random files
    DIR/Media/Documents/*.pdf       PDF skeleton: half text streams (compressible), half random
    DIR/Media/Documents/*.txt       plain text
    DIR/Media/Forwarded/*           forwarded media: byte-for-byte copies of files above

The same --seed, --scale and sequence of --advance-day calls give the same file contents
(the SQLite file's bytes also depend on the SQLite library version). File times are set from
the message that "sent" them, so they are deterministic too, except messages.db's.
"""

import argparse
import math
import os
import random
import shutil
import sqlite3
import sys
import time

# 2024-01-01T00:00:00Z: "day 0" of the history; the initial history covers the year before it.
EPOCH = 1704067200
DAY = 86400
HISTORY_DAYS = 365

# Per unit of scale.
MESSAGES = 36000
CHATS = 12
IMAGES = 36
VIDEOS = 1.3
VOICE = 40
PDFS = 4
TEXTS = 3
FORWARD_FRACTION = 0.06

KIB = 1024
MIB = 1024 * 1024

WORDS = """
i you the to a and it is that of in for me on have my be this what just do we so no not
but are with your was can at if like it's i'm know get all don't okay ok yes yeah up out
now go will about one when how good see there think time then really he she they love lol
going here got too did want tomorrow today tonight back well come thanks thank need am
would sure let's home work night see haha still from by an been more should maybe our
right sorry call later pm am morning week weekend dinner lunch coffee meeting train bus
car late early soon happy great nice cool fine wait done ready leave bring pick buy send
photo video pics message phone battery address place party birthday mum dad kids school
office doctor store shop money paid pay ticket tickets flight hotel trip holiday beach
rain weather cold hot sun game match score team watch movie show book read song music
play playing said told asked tell say talk talking saw look looks looking amazing funny
crazy weird true exactly totally probably definitely already again also only even much
very some any every other new old big little long last next first same different best
where why which who because though after before while until since around over under
food pizza beer wine cake tea breakfast cooking kitchen garden dog cat walk run gym
early everyone anyone someone nothing something everything people friend friends family
"""

NAMES = """
Alice Bob Carla Dmitri Elena Farid Grace Hiro Ines Jonas Kemal Lena Mateo Nora Omar Priya
Quentin Rosa Sami Tove Ulrich Vera Wei Ximena Yusuf Zoe Anja Bruno Chloe Diego
""".split()

GROUPS = ["Family", "Climbing crew", "Flat 3B", "Book club", "Work - platform team", "Uni friends",
          "Football Sundays", "Wedding planning", "Neighbours", "Trip to Lisbon", "Parents of 4C",
          "Board games", "Running club", "Choir", "Startup ideas"]

EMOJI = ["😂", "❤️", "👍", "🙏", "😊", "😭", "🎉", "🔥", "😅", "👀", "🤔", "😍", "🙈", "✅"]

LOREM_DOC = """The committee met on Tuesday to review the budget for the next quarter. Attendance
was good and the minutes of the previous meeting were approved without changes. The treasurer
reported that expenses are in line with the plan, with a small overrun on travel that is
expected to be offset by lower venue costs later in the year. Action items: confirm the venue,
circulate the draft programme, and collect the remaining membership fees before the deadline.
"""


class Text:
    """Chat-like sentences from a Zipf-weighted vocabulary."""

    def __init__(self):
        self.words = WORDS.split()
        weights = [1.0 / (rank + 1) ** 0.9 for rank in range(len(self.words))]
        self.cum = []
        total = 0.0
        for w in weights:
            total += w
            self.cum.append(total)

    def message(self, rng):
        r = rng.random()
        if r < 0.45:
            n = rng.randint(1, 6)
        elif r < 0.85:
            n = rng.randint(5, 16)
        else:
            n = rng.randint(15, 60)
        words = rng.choices(self.words, cum_weights=self.cum, k=n)
        s = " ".join(words)
        if rng.random() < 0.6:
            s = s[0].upper() + s[1:]
        r = rng.random()
        if r < 0.25:
            s += "?"
        elif r < 0.45:
            s += "!"
        elif r < 0.6:
            s += "."
        if rng.random() < 0.12:
            s += " " + rng.choice(EMOJI)
        if rng.random() < 0.01:
            s += " https://example.org/%s/%d" % (rng.choice(self.words), rng.randint(1000, 99999))
        return s

    def paragraph(self, rng, sentences):
        return " ".join(self.message(rng) for _ in range(sentences)) + "\n"


def count(base, scale):
    return max(1, int(round(base * scale)))


def stamp(ts):
    return time.strftime("%Y%m%d", time.gmtime(ts))


# ---- media bodies -------------------------------------------------------------------------

def jpeg_bytes(rng, size):
    head = (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x48\x00\x48\x00\x00"
            b"\xff\xdb\x00\x43\x00" + bytes(rng.randrange(1, 64) for _ in range(64)) +
            b"\xff\xc0\x00\x11\x08\x03\x00\x04\x00\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
            b"\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00")
    return head + rng.randbytes(max(0, size - len(head) - 2)) + b"\xff\xd9"


def mp4_bytes(rng, size):
    ftyp = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    body = max(0, size - len(ftyp) - 8)
    return ftyp + (body + 8).to_bytes(4, "big") + b"mdat" + rng.randbytes(body)


def opus_bytes(rng, size):
    head = (b"OggS\x00\x02" + bytes(8) + rng.randbytes(4) + bytes(4) + rng.randbytes(4) +
            b"\x01\x13OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00")
    return head + rng.randbytes(max(0, size - len(head)))


def pdf_bytes(rng, text, size):
    """Alternating text and binary streams: about half compresses well."""
    out = [b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"]
    n = len(out[0])
    obj = 1
    while n < size:
        if rng.random() < 0.5:
            chunk = text.paragraph(rng, rng.randint(20, 80)).encode() + LOREM_DOC.encode()
        else:
            chunk = rng.randbytes(rng.randint(8 * KIB, 64 * KIB))
        piece = b"%d 0 obj\n<< /Length %d >>\nstream\n" % (obj, len(chunk)) + chunk + b"\nendstream\nendobj\n"
        out.append(piece)
        n += len(piece)
        obj += 1
    out.append(b"trailer\n<< /Root 1 0 R >>\n%%EOF\n")
    return b"".join(out)


def text_doc(rng, text, size):
    parts, n = [], 0
    while n < size:
        p = text.paragraph(rng, rng.randint(3, 12)) + "\n"
        parts.append(p)
        n += len(p.encode())
    return "".join(parts).encode()


def log_uniform(rng, lo, hi):
    # Sizes spread like real media: many small, few large.
    return int(math.exp(rng.uniform(math.log(lo), math.log(hi))))


KINDS = {
    # kind: (folder, prefix, extension)
    "image": ("Images", "IMG", "jpg"),
    "video": ("Video", "VID", "mp4"),
    "voice": ("Voice Notes", "PTT", "opus"),
    "pdf": ("Documents", "DOC", "pdf"),
    "text": ("Documents", "DOC", "txt"),
}


def media_body(kind, rng, text):
    if kind == "image":
        return jpeg_bytes(rng, log_uniform(rng, 60 * KIB, 900 * KIB))
    if kind == "video":
        return mp4_bytes(rng, log_uniform(rng, 2 * MIB, 12 * MIB))
    if kind == "voice":
        return opus_bytes(rng, log_uniform(rng, 8 * KIB, 160 * KIB))
    if kind == "pdf":
        return pdf_bytes(rng, text, log_uniform(rng, 80 * KIB, 1500 * KIB))
    return text_doc(rng, text, log_uniform(rng, 4 * KIB, 80 * KIB))


def write_file(path, data, ts):
    with open(path, "wb") as f:
        f.write(data)
    os.utime(path, (ts, ts))


def media_name(out, kind, ts, serial):
    folder, prefix, ext = KINDS[kind]
    return os.path.join(out, "Media", folder, "%s-%s-WA%04d.%s" % (prefix, stamp(ts), serial, ext))


# ---- database ------------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE chats(
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    is_group INTEGER NOT NULL,
    created_ts INTEGER NOT NULL,
    muted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE messages(
    id INTEGER PRIMARY KEY,
    chat_id INTEGER NOT NULL REFERENCES chats(id),
    sender TEXT NOT NULL,
    ts INTEGER NOT NULL,
    body TEXT,
    read INTEGER NOT NULL DEFAULT 0,
    edited INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX messages_by_chat ON messages(chat_id, ts);
CREATE TABLE counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def get_counter(db, name):
    row = db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
    return row[0] if row else 0


def set_counter(db, name, value):
    db.execute("INSERT OR REPLACE INTO counters(name, value) VALUES (?, ?)", (name, value))


class Chats:
    def __init__(self, db):
        self.rows = db.execute("SELECT id, title, is_group FROM chats ORDER BY id").fetchall()
        # Member names per chat: derived from the chat id, so stable across runs.
        self.members = {}
        for cid, title, is_group in self.rows:
            r = random.Random("members:%d" % cid)
            self.members[cid] = r.sample(NAMES, 6 if is_group else 1) + ["me"]
        # A few chats carry most of the traffic.
        self.cum, total = [], 0.0
        for i in range(len(self.rows)):
            total += 1.0 / (i + 1)
            self.cum.append(total)

    def pick(self, rng):
        cid = rng.choices(self.rows, cum_weights=self.cum, k=1)[0][0]
        return cid, rng.choice(self.members[cid])


def create_chats(db, rng, scale):
    n = count(CHATS, scale)
    rows = []
    for cid in range(1, n + 1):
        is_group = 1 if rng.random() < 0.4 else 0
        title = rng.choice(GROUPS) + ("" if cid <= len(GROUPS) else " %d" % cid) if is_group else rng.choice(NAMES) + " " + rng.choice("ABCDEFGHKLMNPRSTW") + "."
        rows.append((cid, title, is_group, EPOCH - HISTORY_DAYS * DAY - rng.randrange(200 * DAY), int(rng.random() < 0.2)))
    db.executemany("INSERT INTO chats VALUES (?, ?, ?, ?, ?)", rows)


def new_messages(db, chats, rng, text, n, start_ts, end_ts, unread_after):
    """Inserts n messages with times in [start_ts, end_ts), in time order."""
    times = sorted(rng.randrange(start_ts, end_ts) for _ in range(n))
    rows = []
    for ts in times:
        cid, sender = chats.pick(rng)
        read = 1 if sender == "me" or ts < unread_after else 0
        rows.append((cid, sender, ts, text.message(rng), read))
    db.executemany("INSERT INTO messages(chat_id, sender, ts, body, read) VALUES (?, ?, ?, ?, ?)", rows)
    return times


def attach_media(db, out, rng, text, kinds, start_ts, end_ts, chats):
    """Writes one file per kind in `kinds` and a message pointing at it; returns bytes written."""
    serial = get_counter(db, "media_serial")
    total = 0
    rows = []
    for kind in kinds:
        serial += 1
        ts = rng.randrange(start_ts, end_ts)
        path = media_name(out, kind, ts, serial)
        data = media_body(kind, rng, text)
        write_file(path, data, ts)
        total += len(data)
        cid, sender = chats.pick(rng)
        rows.append((cid, sender, ts, "<attached: %s>" % os.path.basename(path), 1))
    db.executemany("INSERT INTO messages(chat_id, sender, ts, body, read) VALUES (?, ?, ?, ?, ?)", rows)
    set_counter(db, "media_serial", serial)
    return total


def media_files(out):
    """Every media file except forwarded copies, in a stable order."""
    files = []
    for kind_folder in sorted({v[0] for v in KINDS.values()}):
        d = os.path.join(out, "Media", kind_folder)
        files += [os.path.join(d, f) for f in sorted(os.listdir(d))]
    return files


def forward(out, rng, source, ts, serial):
    """Copies `source` byte for byte into Media/Forwarded under another name."""
    ext = source.rsplit(".", 1)[-1]
    dest = os.path.join(out, "Media", "Forwarded", "FWD-%s-%04d.%s" % (stamp(ts), serial, ext))
    shutil.copyfile(source, dest)
    os.utime(dest, (ts, ts))
    return os.path.getsize(dest)


def tree_summary(out):
    files = size = 0
    for root, _, names in os.walk(out):
        for n in names:
            files += 1
            size += os.path.getsize(os.path.join(root, n))
    return files, size


# ---- commands ------------------------------------------------------------------------------

def generate(out, scale, seed):
    if os.path.exists(out) and os.listdir(out):
        sys.exit("make-sample-chat: %s exists and is not empty" % out)
    for folder in sorted({v[0] for v in KINDS.values()}) + ["Forwarded"]:
        os.makedirs(os.path.join(out, "Media", folder), exist_ok=True)
    rng = random.Random("chat:%d:create" % seed)
    text = Text()
    db = sqlite3.connect(os.path.join(out, "messages.db"))
    db.executescript(SCHEMA)
    create_chats(db, rng, scale)
    chats = Chats(db)
    start, end = EPOCH - HISTORY_DAYS * DAY, EPOCH
    # Messages go in batches so memory stays flat at large scales.
    remaining = count(MESSAGES, scale)
    batch_span = DAY * 7
    batches = (end - start) // batch_span
    per_batch = remaining // batches
    for b in range(batches):
        n = remaining if b == batches - 1 else per_batch
        remaining -= n
        s = start + b * batch_span
        new_messages(db, chats, rng, text, n, s, min(end, s + batch_span), unread_after=end - 2 * DAY)
    kinds = (["image"] * count(IMAGES, scale) + ["video"] * count(VIDEOS, scale) + ["voice"] * count(VOICE, scale) +
             ["pdf"] * count(PDFS, scale) + ["text"] * count(TEXTS, scale))
    rng.shuffle(kinds)
    attach_media(db, out, rng, text, kinds, start, end, chats)
    # Forwarded duplicates of smaller media (videos are rarely forwarded).
    candidates = [p for p in media_files(out) if not p.endswith(".mp4")]
    n_fwd = max(1, int(round(len(kinds) * FORWARD_FRACTION)))
    for i, src in enumerate(sorted(rng.sample(candidates, min(n_fwd, len(candidates))))):
        forward(out, rng, src, rng.randrange(start, end), i + 1)
    set_counter(db, "forwarded_serial", n_fwd)
    set_counter(db, "day", 0)
    set_counter(db, "scale_milli", int(round(scale * 1000)))
    set_counter(db, "seed", seed)
    set_counter(db, "messages_total", db.execute("SELECT count(*) FROM messages").fetchone()[0])
    set_counter(db, "unread", db.execute("SELECT count(*) FROM messages WHERE read = 0").fetchone()[0])
    db.commit()
    db.close()
    files, size = tree_summary(out)
    print("make-sample-chat: %s: %d files, %d bytes (%.1f MiB), scale %g, seed %d" % (out, files, size, size / MIB, scale, seed))


def advance(out, day, seed_arg):
    path = os.path.join(out, "messages.db")
    if not os.path.isfile(path):
        sys.exit("make-sample-chat: %s has no messages.db; create it first" % out)
    db = sqlite3.connect(path)
    current = get_counter(db, "day")
    if day <= current:
        sys.exit("make-sample-chat: %s is already at day %d; --advance-day must be later" % (out, current))
    seed = seed_arg if seed_arg is not None else get_counter(db, "seed")
    scale = get_counter(db, "scale_milli") / 1000.0 or 1.0
    rng = random.Random("chat:%d:day:%d" % (seed, day))
    text = Text()
    chats = Chats(db)
    start, end = EPOCH + (day - 1) * DAY, EPOCH + day * DAY
    max_id = db.execute("SELECT max(id) FROM messages").fetchone()[0] or 0

    # About 1 % new messages a day, all arriving unread unless sent by "me".
    added = count(MESSAGES * 0.01, scale)
    new_messages(db, chats, rng, text, added, start, end, unread_after=start)
    # Read receipts: the user opens chats and reads most of what is unread.
    unread = [r[0] for r in db.execute("SELECT id FROM messages WHERE read = 0 ORDER BY id")]
    receipts = rng.sample(unread, min(len(unread), count(MESSAGES * 0.008, scale)))
    db.executemany("UPDATE messages SET read = 1 WHERE id = ?", [(i,) for i in receipts])
    # Edits and deletions scattered over the whole history (touch pages all over the file).
    edits = [rng.randint(1, max_id) for _ in range(count(MESSAGES * 0.0008, scale))]
    db.executemany("UPDATE messages SET body = ?, edited = 1 WHERE id = ?", [(text.message(rng), i) for i in edits])
    deletions = [rng.randint(1, max_id) for _ in range(count(MESSAGES * 0.0004, scale))]
    db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in deletions])
    # A few new media files and one forwarded duplicate.
    kinds = ["image"] * count(3, scale ** 0.5) + ["voice"] * count(2, scale ** 0.5)
    if rng.random() < 0.3:
        kinds.append("pdf")
    new_bytes = attach_media(db, out, rng, text, kinds, start, end, chats)
    serial = get_counter(db, "forwarded_serial") + 1
    source = rng.choice([p for p in media_files(out) if not p.endswith(".mp4")])
    new_bytes += forward(out, rng, source, rng.randrange(start, end), serial)
    set_counter(db, "forwarded_serial", serial)
    set_counter(db, "day", day)
    set_counter(db, "messages_total", db.execute("SELECT count(*) FROM messages").fetchone()[0])
    set_counter(db, "unread", db.execute("SELECT count(*) FROM messages WHERE read = 0").fetchone()[0])
    db.commit()
    db.close()
    files, size = tree_summary(out)
    print("make-sample-chat: %s: day %d: +%d messages, %d read, %d edited, %d deleted, +%d media files (%d bytes), 1 forwarded; "
          "%d files, %d bytes (%.1f MiB)" % (out, day, added + len(kinds), len(receipts), len(edits), len(deletions),
                                             len(kinds), new_bytes, files, size, size / MIB))


def main():
    p = argparse.ArgumentParser(description="Generate (or advance by a day) a sample chat app data directory.")
    p.add_argument("--out", required=True, help="the data directory")
    p.add_argument("--scale", type=float, default=1.0, help="size factor: 1 is about 25 MiB, 40 about 1 GiB (default 1)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 1; --advance-day reuses the creation seed)")
    p.add_argument("--advance-day", type=int, metavar="N", help="modify an existing directory as day N (N >= 1) would")
    a = p.parse_args()
    if a.scale <= 0:
        p.error("--scale must be positive")
    if a.advance_day is not None:
        if a.advance_day < 1:
            p.error("--advance-day must be at least 1")
        advance(a.out, a.advance_day, a.seed)
    else:
        generate(a.out, a.scale, 1 if a.seed is None else a.seed)


if __name__ == "__main__":
    main()

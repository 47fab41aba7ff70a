"""Small seeded data files in the SLOT, AVAZU and MOVIELENS formats for
psexport_test.py (CRITEO data comes from ps_datagen). They exercise what
the parsers must map exactly as the C++ ones: multi-valued and empty slots,
tokens out of slot order, TAB and space separators, dense values in every
decimal form from_chars takes, CRLF line ends, a CSV header, side files with
multi-genre and genre-less items and empty release dates.
"""

import random

FLOATS = ["0.5", "-0", ".25", "3.", "1e-3", "-2.5E+1", "0.1", "7", "1e-40",
          "123456.789", "-0.000001"]


def write_slot(path, rows, rng, num_slots, num_dense):
    """`label slot:key ... d<i>:value` lines; slots hold 0 to 3 keys."""
    with open(path, "w") as f:
        for _ in range(rows):
            tokens = []
            score = 0
            for s in range(num_slots):
                for _ in range(rng.choice([0, 1, 1, 1, 2, 3])):
                    key = int(rng.paretovariate(1.2)) % 200
                    score += (key % 7) - 3 + s
                    tokens.append("%d:%d" % (s, key))
            for d in range(num_dense):
                if rng.random() < 0.8:
                    tokens.append("d%d:%s" % (d, rng.choice(FLOATS) if
                                              rng.random() < 0.3 else
                                              "%.4f" % rng.gauss(0, 1)))
            rng.shuffle(tokens)
            label = 1 if rng.random() < 1 / (1 + 2.7 ** (-score / 8)) else 0
            sep = "\t" if rng.random() < 0.3 else " "
            f.write("%d%s%s\n" % (label, sep, sep.join(tokens)))


def write_avazu(path, rows, rng):
    """The Kaggle CSV with its header; a few CRLF lines."""
    fields = ["id", "click", "hour", "C1", "banner_pos", "site_id",
              "site_domain", "site_category", "app_id", "app_domain",
              "app_category", "device_id", "device_ip", "device_model",
              "device_type", "device_conn_type", "C14", "C15", "C16", "C17",
              "C18", "C19", "C20", "C21"]
    with open(path, "w", newline="") as f:
        f.write(",".join(fields) + "\n")
        for i in range(rows):
            day = rng.choice(["141021", "141022", "141025", "141030"])
            values = []
            for c in range(21):
                v = int(rng.paretovariate(1.1)) % 40
                values.append("" if v == 39 else
                              ("%x" % (v * 7919 + c)) if c % 3 else str(v))
            label = 1 if (values[2] + values[5]).count("1") > 1 else 0
            if rng.random() < 0.2:
                label = 1 - label
            line = ",".join(["%d" % (10 ** 17 + i * 7919), str(label),
                             "%s%02d" % (day, rng.randrange(24))] + values)
            f.write(line + ("\r\n" if rng.random() < 0.1 else "\n"))


def write_movielens(data_path, user_path, item_path, rows, rng):
    """u.user, u.item (latin-1 titles, empty dates, 0 to 3 genres) and
    ratings `user TAB item TAB rating TAB timestamp`."""
    users, items = 60, 80
    occupations = ["writer", "student", "engineer", "artist", "other"]
    with open(user_path, "w") as f:
        for u in range(1, users + 1):
            f.write("%d|%d|%s|%s|%05d\n" % (u, rng.randrange(7, 80),
                                             rng.choice("MF"),
                                             rng.choice(occupations),
                                             rng.randrange(100000)))
    with open(item_path, "wb") as f:
        for i in range(1, items + 1):
            flags = [0] * 19
            for g in rng.sample(range(19), rng.choice([0, 1, 1, 2, 3])):
                flags[g] = 1
            date = ("" if i % 11 == 0 else
                    "01-Jan-%d" % rng.randrange(1930, 1999))
            title = "Caf\xe9 %d (%s)" % (i, date[-4:] or "????")
            f.write(("%d|%s|%s||http://x/%d|%s\n" %
                     (i, title, date, i, "|".join(map(str, flags))))
                    .encode("latin-1"))
    with open(data_path, "w") as f:
        for _ in range(rows):
            u, i = rng.randrange(1, users + 1), rng.randrange(1, items + 1)
            rating = min(5, max(1, int(rng.gauss(3 + (u % 3 - i % 2), 1))))
            f.write("%d\t%d\t%d\t%d\n" % (u, i, rating,
                                          874965758 + rng.randrange(10 ** 6)))


def make_all(directory, seed=7):
    """Writes every format's train and eval files; returns their paths."""
    rng = random.Random(seed)
    p = {}
    for split, rows in (("train", 3000), ("eval", 600)):
        p["slot_" + split] = "%s/slot_%s.txt" % (directory, split)
        write_slot(p["slot_" + split], rows, rng, num_slots=5, num_dense=3)
        p["avazu_" + split] = "%s/avazu_%s.csv" % (directory, split)
        write_avazu(p["avazu_" + split], rows, rng)
    p["ml_user"] = directory + "/u.user"
    p["ml_item"] = directory + "/u.item"
    p["ml_train"] = directory + "/u1.base"
    write_movielens(p["ml_train"], p["ml_user"], p["ml_item"], 3000, rng)
    p["ml_eval"] = directory + "/u1.test"
    with open(p["ml_eval"], "w") as f:
        for _ in range(600):
            u, i = rng.randrange(1, 61), rng.randrange(1, 81)
            f.write("%d\t%d\t%d\t%d\n" % (u, i, rng.randrange(1, 6), 8e8))
    return p

"""The demo world: a deterministic, generated music catalog with listeners who have taste.

Plain Python and numpy, no ORM: `generate_demo_world(...)` returns lists of plain records
that `ingest.services.demo_world_write` stores. The structure is there so that models have
something to learn:

- genres are clusters of tags (a genre tag, sub-genre tags and moods), and each genre has
  hours of the day when it is played most (ambient in the morning, techno at night);
- artist popularity is Zipf-like, and so is track popularity inside an artist's catalog;
- artists have "similar artists", mostly in their own genre;
- each user has one to three favourite genres, a few favourite artists and listening hours;
- a session is a run of coherent tracks: the next track on the same record, a track by a
  similar artist, or another artist of the genre, with rare genre switches;
- likes follow taste, skips and dislikes follow its absence;
- playlists are coherent runs made the same way.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate

import numpy as np

GENRES: dict[str, list[str]] = {
    "indie rock": ["jangle pop", "lo-fi", "garage rock", "slacker rock"],
    "dream pop": ["shoegaze", "ethereal", "reverb", "hazy"],
    "techno": ["minimal techno", "warehouse", "hypnotic", "acid"],
    "house": ["deep house", "disco", "groovy", "soulful house"],
    "hip hop": ["boom bap", "lyrical", "trap", "jazz rap"],
    "jazz": ["bebop", "modal jazz", "cool jazz", "fusion"],
    "folk": ["acoustic", "singer-songwriter", "americana", "fingerpicking"],
    "metal": ["doom", "thrash", "sludge", "black metal"],
    "classical": ["baroque", "romantic era", "chamber music", "solo piano"],
    "ambient": ["drone", "field recordings", "new age", "meditative"],
    "soul": ["motown", "funk", "neo soul", "gospel"],
    "punk": ["hardcore", "post-punk", "pop punk", "riot grrrl"],
    "reggae": ["dub", "roots reggae", "dancehall", "ska"],
    "latin": ["salsa", "cumbia", "bossa nova", "reggaeton"],
    "synthwave": ["retro", "darkwave", "italo disco", "outrun"],
    "country": ["honky tonk", "bluegrass", "outlaw country", "alt-country"],
}
# The hour around which each genre is most played (a smooth daily cycle around it).
GENRE_PEAK_HOUR = {
    "indie rock": 17, "dream pop": 22, "techno": 1, "house": 23, "hip hop": 19, "jazz": 21,
    "folk": 9, "metal": 18, "classical": 8, "ambient": 7, "soul": 20, "punk": 16,
    "reggae": 15, "latin": 21, "synthwave": 0, "country": 12,
}  # fmt: skip
MOODS = ["chill", "energetic", "melancholic", "upbeat", "late night", "focus", "party", "sunny"]
GENRE_MOODS = {
    "indie rock": ["upbeat", "melancholic"], "dream pop": ["chill", "melancholic"],
    "techno": ["energetic", "late night"], "house": ["party", "late night"],
    "hip hop": ["energetic", "party"], "jazz": ["chill", "late night"],
    "folk": ["sunny", "melancholic"], "metal": ["energetic"], "classical": ["focus", "chill"],
    "ambient": ["focus", "chill"], "soul": ["upbeat", "sunny"], "punk": ["energetic"],
    "reggae": ["sunny", "chill"], "latin": ["party", "sunny"],
    "synthwave": ["late night", "energetic"], "country": ["sunny", "upbeat"],
}  # fmt: skip

ADJECTIVES = (
    "Velvet Neon Silver Hollow Golden Paper Midnight Crimson Quiet Electric Wandering Broken "
    "Amber Frozen Distant Gentle Wild Lunar Static Scarlet Cobalt Faded Honey Iron Glass Violet "
    "Secret Northern Restless Tender Burning Lonely Marble Paper Painted Sleepless Hidden Solar "
    "Copper Little Endless Salt Silent Ivory Dusty Rusty Empty Bright Wooden"
).split()
NOUNS = (
    "Harbor Echoes Foxes Lanterns Rivers Satellites Orchards Tides Mirrors Sparrows Wolves Gardens "
    "Horizons Ghosts Bridges Comets Parade Canyon Fever Motel Arcade Signal Orbit Meadow Cathedral "
    "Lighthouse Avenue Monsoon Cassette Telegraph Pilots Engines Raven Willow Thunder Diamonds "
    "Kites Embers Oceans Summer Winter Highway Station Circus Prism Atlas Valley Ferris Ladder"
).split()
FIRST_NAMES = (
    "Ada Ben Cleo Dario Elin Farah Gus Hana Ivo June Kofi Lena Milo Nadia Otto Priya Quinn Rosa "
    "Sami Tove Umar Vera Wes Xena Yuki Zane Ines Jonas Mara Theo Lior Noor Anouk Bruno Celia"
).split()
LAST_NAMES = (
    "Adler Brandt Castell Dufresne Eklund Ferrer Garrow Holm Ibarra Jansen Kowal Lindqvist Moreau "
    "Novak Okafor Petrov Quintero Rask Sato Tamura Ulloa Varga Whitlock Yilmaz Zeller Marsh Vance"
).split()
VERBS = (
    "Falling Running Dreaming Waiting Dancing Drifting Burning Chasing Calling Leaving Holding "
    "Breathing Turning Shining Floating Sinking Counting Wishing Hiding Rising"
).split()
PLACES = (
    "Lisbon|Tokyo|the Rain|the Dark|Neon Lights|the Sea|Brooklyn|Havana|Berlin|the Desert|the Snow|"
    "Paris|the Stars|Main Street|the Morning|Reykjavik|Lagos|Montreal|the Valley"
).split("|")
PLAYLIST_WORDS = [
    "Sunday",
    "Late",
    "Commute",
    "Rainy Day",
    "Focus",
    "Road Trip",
    "Kitchen",
    "Night",
]


@dataclass(frozen=True)
class DemoWorldSize:
    users: int = 2000
    artists: int = 800
    tracks: int = 10000
    events: int = 300_000
    playlists: int = 3000
    days: int = 120

    @classmethod
    def scaled(cls, factor: float) -> DemoWorldSize:
        """A smaller (or larger) world with the same shape, e.g. 0.05 for quick tests."""
        full = cls()
        return cls(
            users=max(20, round(full.users * factor)),
            artists=max(len(GENRES), round(full.artists * factor)),
            tracks=max(3 * len(GENRES), round(full.tracks * factor)),
            events=max(500, round(full.events * factor)),
            playlists=max(10, round(full.playlists * factor)),
            days=full.days,
        )


@dataclass
class DemoWorld:
    """Plain records; indices into these lists are the ids used between them."""

    tag_names: list[str] = field(default_factory=list)
    genre_names: list[str] = field(default_factory=list)
    artist_names: list[str] = field(default_factory=list)
    artist_genre: list[int] = field(default_factory=list)
    artist_tags: list[list[tuple[int, float]]] = field(default_factory=list)
    track_titles: list[str] = field(default_factory=list)
    track_artist: list[int] = field(default_factory=list)
    track_duration_s: list[int] = field(default_factory=list)
    track_tags: list[list[tuple[int, float]]] = field(default_factory=list)
    usernames: list[str] = field(default_factory=list)
    user_genres: list[list[int]] = field(default_factory=list)
    # (user, track, kind, timestamp) with kind in play / like / skip / dislike
    events: list[tuple[int, int, str, datetime]] = field(default_factory=list)
    # (user, name, is_public, [track, …])
    playlists: list[tuple[int, str, bool, list[int]]] = field(default_factory=list)

    def track_genre(self, track: int) -> int:
        return self.artist_genre[self.track_artist[track]]


def _unique(name: str, seen: set[str]) -> str:
    candidate, suffix = name, 2
    while candidate in seen:
        candidate = (
            f"{name} {['II', 'III', 'IV', 'V', 'VI'][min(suffix - 2, 4)]}{suffix // 6 or ''}"
        )
        suffix += 1
    seen.add(candidate)
    return candidate


def _artist_name(rng: random.Random) -> str:
    pattern = rng.randrange(6)
    adjective, noun = rng.choice(ADJECTIVES), rng.choice(NOUNS)
    if pattern == 0:
        return f"The {adjective} {noun}"
    if pattern == 1:
        return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
    if pattern == 2:
        return f"{adjective} {noun}"
    if pattern == 3:
        return f"{noun} of {rng.choice(NOUNS)}"
    if pattern == 4:
        return f"{rng.choice(FIRST_NAMES)} & the {noun}"
    return f"{rng.choice(LAST_NAMES)} {noun}"


def _track_title(rng: random.Random) -> str:
    pattern = rng.randrange(5)
    if pattern == 0:
        return f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}"
    if pattern == 1:
        return f"{rng.choice(VERBS)} {rng.choice(['Home', 'Away', 'Slowly', 'Again', 'Back'])}"
    if pattern == 2:
        return f"{rng.choice(NOUNS)} in {rng.choice(PLACES)}"
    if pattern == 3:
        return f"{rng.choice(VERBS)} for {rng.choice(FIRST_NAMES)}"
    return rng.choice(NOUNS)


def _hour_affinity(genre: str) -> list[float]:
    """A smooth daily cycle peaking at the genre's hour (von Mises shape)."""
    peak = GENRE_PEAK_HOUR[genre]
    return [math.exp(1.5 * math.cos(2 * math.pi * (hour - peak) / 24)) for hour in range(24)]


class _Picker:
    """Weighted choice with precomputed cumulative weights (fast in a hot loop)."""

    def __init__(self, items: list[int], weights: list[float]):
        self.items = items
        self.cumulative = list(accumulate(weights))

    def pick(self, rng: random.Random) -> int:
        index = bisect_right(self.cumulative, rng.random() * self.cumulative[-1])
        return self.items[min(index, len(self.items) - 1)]


def generate_demo_world(*, size: DemoWorldSize = DemoWorldSize(), seed: int = 2020) -> DemoWorld:
    rng = random.Random(seed)
    np_rng = np.random.default_rng(seed)
    world = DemoWorld()
    genres = list(GENRES)
    world.genre_names = genres

    # Tags: genre tags, sub-genre tags and moods.
    tag_index: dict[str, int] = {}
    for name in [*genres, *(sub for subs in GENRES.values() for sub in subs), *MOODS]:
        tag_index.setdefault(name, len(tag_index))
    world.tag_names = list(tag_index)

    # Artists: a genre each, Zipf popularity spread over genres, similar artists mostly in-genre.
    artist_popularity = 1.0 / np.arange(1, size.artists + 1) ** 1.1
    np_rng.shuffle(artist_popularity)
    seen_names: set[str] = set()
    for artist in range(size.artists):
        genre = genres[artist % len(genres)] if artist < len(genres) else rng.choice(genres)
        world.artist_genre.append(genres.index(genre))
        world.artist_names.append(_unique(_artist_name(rng), seen_names))
        subs = rng.sample(GENRES[genre], k=2)
        moods = GENRE_MOODS[genre][:1] + rng.sample(MOODS, k=1)
        tags = [(tag_index[genre], 1.0)] + [
            (tag_index[s], round(rng.uniform(0.4, 0.9), 2)) for s in subs
        ]
        tags += [(tag_index[m], round(rng.uniform(0.2, 0.6), 2)) for m in dict.fromkeys(moods)]
        world.artist_tags.append(tags)
    artists_by_genre: dict[int, list[int]] = {g: [] for g in range(len(genres))}
    for artist, genre in enumerate(world.artist_genre):
        artists_by_genre[genre].append(artist)
    genre_artist_picker = {
        g: _Picker(members, [float(artist_popularity[a]) for a in members])
        for g, members in artists_by_genre.items()
    }
    similar_artists: list[_Picker] = []
    for artist in range(size.artists):
        own = artists_by_genre[world.artist_genre[artist]]
        pool = [a for a in own if a != artist] or own
        neighbours = rng.sample(pool, k=min(6, len(pool)))
        neighbours.append(rng.randrange(size.artists))  # one cross-genre neighbour
        similar_artists.append(
            _Picker(neighbours, [float(artist_popularity[a]) for a in neighbours])
        )

    # Tracks: each artist's catalog is a record in order; popularity decays along it.
    shares = artist_popularity**0.5 / (artist_popularity**0.5).sum()
    per_artist = np.maximum(3, np.floor(shares * size.tracks)).astype(int)
    while per_artist.sum() > size.tracks:
        per_artist[np.argmax(per_artist)] -= 1
    while per_artist.sum() < size.tracks:
        per_artist[np_rng.integers(size.artists)] += 1
    artist_tracks: list[list[int]] = []
    track_weight: list[float] = []
    for artist in range(size.artists):
        tracks = []
        titles_seen: set[str] = set()
        for position in range(per_artist[artist]):
            track = len(world.track_titles)
            tracks.append(track)
            world.track_titles.append(_unique(_track_title(rng), titles_seen))
            world.track_artist.append(artist)
            world.track_duration_s.append(rng.randint(150, 330))
            tags = [(t, w) for t, w in world.artist_tags[artist] if rng.random() < 0.8]
            tags.append((tag_index[rng.choice(MOODS)], round(rng.uniform(0.1, 0.5), 2)))
            merged: dict[int, float] = {}
            for tag, weight in tags:
                merged[tag] = max(weight, merged.get(tag, 0.0))
            world.track_tags.append(sorted(merged.items()))
            track_weight.append(1.0 / (position + 1) ** 0.8 * rng.uniform(0.5, 1.5))
        artist_tracks.append(tracks)
    track_position = {t: i for tracks in artist_tracks for i, t in enumerate(tracks)}
    artist_track_picker = [
        _Picker(tracks, [track_weight[t] for t in tracks]) for tracks in artist_tracks
    ]
    hour_affinity = [_hour_affinity(genre) for genre in genres]

    # Users: favourite genres with weights, favourite artists, listening hours, activity.
    activity = np_rng.lognormal(mean=0.0, sigma=0.8, size=size.users)
    activity = activity / activity.sum()
    user_genre_picker: list[list[tuple[int, float]]] = []
    user_favourite_artists: list[set[int]] = []
    user_hour_picker: list[_Picker] = []
    for user in range(size.users):
        world.usernames.append(
            f"{rng.choice(ADJECTIVES).lower()}_{rng.choice(NOUNS).lower()}_{user + 1}"
        )
        favourite = rng.sample(range(len(genres)), k=rng.choice([1, 2, 2, 3]))
        weights = np_rng.dirichlet(np.full(len(favourite), 2.0))
        preference = [(g, float(w) * 0.92) for g, w in zip(favourite, weights, strict=True)]
        preference += [(g, 0.08 / len(genres)) for g in range(len(genres))]
        user_genre_picker.append(preference)
        world.user_genres.append(favourite)
        fans_of = set()
        for genre in favourite:
            for _ in range(rng.randint(2, 4)):
                fans_of.add(genre_artist_picker[genre].pick(rng))
        user_favourite_artists.append(fans_of)
        habit_peak = rng.choice([8, 13, 18, 21, 23, 1])
        user_hour_picker.append(
            _Picker(
                list(range(24)),
                [math.exp(1.2 * math.cos(2 * math.pi * (h - habit_peak) / 24)) for h in range(24)],
            )
        )

    def next_track(current: int, genre: int, user: int) -> tuple[int, int]:
        artist = world.track_artist[current]
        roll = rng.random()
        if roll < 0.45:  # the next track on the same record
            tracks = artist_tracks[artist]
            return tracks[(track_position[current] + 1) % len(tracks)], genre
        if roll < 0.78:  # a similar artist
            artist = similar_artists[artist].pick(rng)
            return artist_track_picker[artist].pick(rng), world.artist_genre[artist]
        if roll < 0.96:  # another artist of the genre, or a favourite one
            favourites = [a for a in user_favourite_artists[user] if world.artist_genre[a] == genre]
            if favourites and rng.random() < 0.3:
                artist = rng.choice(favourites)
            else:
                artist = genre_artist_picker[genre].pick(rng)
            return artist_track_picker[artist].pick(rng), genre
        genre = _pick_genre(user, rng.randrange(24))
        artist = genre_artist_picker[genre].pick(rng)
        return artist_track_picker[artist].pick(rng), genre

    def _pick_genre(user: int, hour: int) -> int:
        options = user_genre_picker[user]
        weights = [w * hour_affinity[g][hour] for g, w in options]
        return _Picker([g for g, _ in options], weights).pick(rng)

    def first_track(user: int, genre: int) -> int:
        favourites = [a for a in user_favourite_artists[user] if world.artist_genre[a] == genre]
        if favourites and rng.random() < 0.35:
            artist = rng.choice(favourites)
        else:
            artist = genre_artist_picker[genre].pick(rng)
        return artist_track_picker[artist].pick(rng)

    # Listening sessions.
    end = datetime(2026, 11, 1, tzinfo=UTC)
    start = end - timedelta(days=size.days)
    user_picker = _Picker(list(range(size.users)), [float(a) for a in activity])
    # Every user listens at least once; the rest of the sessions follow activity.
    session_users = list(range(size.users))
    while len(world.events) < size.events:
        user = session_users.pop() if session_users else user_picker.pick(rng)
        hour = user_hour_picker[user].pick(rng)
        day = rng.randrange(size.days)
        at = start + timedelta(days=day, hours=hour, minutes=rng.randrange(60))
        genre = _pick_genre(user, hour)
        track = first_track(user, genre)
        favourite_genres = world.user_genres[user]
        for _ in range(max(2, int(rng.expovariate(1 / 12)))):
            artist = world.track_artist[track]
            likes_genre = world.artist_genre[artist] in favourite_genres
            likes_artist = artist in user_favourite_artists[user]
            skip_probability = 0.04 if likes_artist else (0.1 if likes_genre else 0.45)
            if rng.random() < skip_probability:
                world.events.append((user, track, "skip", at))
                if not likes_genre and rng.random() < 0.08:
                    world.events.append((user, track, "dislike", at + timedelta(seconds=5)))
                at += timedelta(seconds=rng.randint(5, 40))
            else:
                world.events.append((user, track, "play", at))
                like_probability = 0.25 if likes_artist else (0.08 if likes_genre else 0.01)
                if rng.random() < like_probability:
                    world.events.append((user, track, "like", at + timedelta(seconds=30)))
                at += timedelta(seconds=world.track_duration_s[track] + rng.randint(0, 20))
            track, genre = next_track(track, genre, user)
            if len(world.events) >= size.events:
                break
    world.events.sort(key=lambda event: (event[3], event[0]))

    # Playlists: coherent runs named after a mood or genre.
    for _ in range(size.playlists):
        user = user_picker.pick(rng)
        genre = _pick_genre(user, rng.randrange(24))
        track = first_track(user, genre)
        tracks = [track]
        for _ in range(rng.randint(8, 40) - 1):
            track, genre = next_track(track, genre, user)
            tracks.append(track)
        tracks = list(dict.fromkeys(tracks))
        name = f"{rng.choice(PLAYLIST_WORDS)} {rng.choice([genres[genre], rng.choice(MOODS)])}"
        world.playlists.append((user, name.title(), rng.random() < 0.5, tracks))
    return world

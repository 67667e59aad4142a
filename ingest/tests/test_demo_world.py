"""The demo world has structure worth learning: genres, skewed popularity, coherent sessions."""

from collections import Counter, defaultdict
from datetime import timedelta

import numpy as np
import pytest

from ingest.demo_world import DemoWorldSize, generate_demo_world

SMALL = DemoWorldSize(users=300, artists=120, tracks=1500, events=30_000, playlists=200)


@pytest.fixture(scope="module")
def world():
    return generate_demo_world(size=SMALL, seed=7)


def test_same_seed_gives_the_same_world(world):
    again = generate_demo_world(size=SMALL, seed=7)
    assert again.events == world.events
    assert again.track_titles == world.track_titles
    assert again.playlists == world.playlists


def test_other_seed_gives_another_world(world):
    other = generate_demo_world(size=SMALL, seed=8)
    assert other.events != world.events


def test_sizes_are_respected(world):
    assert len(world.usernames) == SMALL.users
    assert len(world.artist_names) == SMALL.artists
    assert len(world.track_titles) == SMALL.tracks
    assert len(world.events) == SMALL.events
    assert len(world.playlists) == SMALL.playlists
    assert len(set(world.artist_names)) == SMALL.artists


def test_popularity_is_skewed(world):
    plays = Counter(track for _, track, kind, _ in world.events if kind == "play")
    counts = np.sort(np.array(list(plays.values())))[::-1]
    top_decile_share = counts[: len(world.track_titles) // 10].sum() / counts.sum()
    assert top_decile_share > 0.3  # uniform popularity would give about 0.1


def _sessions(world, gap=timedelta(minutes=45)):
    by_user = defaultdict(list)
    for user, track, kind, at in world.events:
        if kind in ("play", "skip"):
            by_user[user].append((at, track))
    for events in by_user.values():
        events.sort()
        session = [events[0][1]]
        for (previous, _), (at, track) in zip(events, events[1:], strict=False):
            if at - previous > gap:
                yield session
                session = []
            session.append(track)
        yield session


def test_sessions_are_more_genre_coherent_than_random(world):
    same_genre = total = 0
    for session in _sessions(world):
        for a, b in zip(session, session[1:], strict=False):
            same_genre += world.track_genre(a) == world.track_genre(b)
            total += 1
    rng = np.random.default_rng(0)
    tracks = rng.integers(len(world.track_titles), size=(5000, 2))
    random_rate = np.mean([world.track_genre(a) == world.track_genre(b) for a, b in tracks])
    assert same_genre / total > 0.6
    assert same_genre / total > 3 * random_rate


def test_likes_follow_taste(world):
    liked_in_taste = [
        world.track_genre(track) in world.user_genres[user]
        for user, track, kind, _ in world.events
        if kind == "like"
    ]
    skipped_in_taste = [
        world.track_genre(track) in world.user_genres[user]
        for user, track, kind, _ in world.events
        if kind == "skip"
    ]
    assert np.mean(liked_in_taste) > 0.85
    assert np.mean(liked_in_taste) > np.mean(skipped_in_taste) + 0.2


def test_listening_hours_depend_on_genre(world):
    techno = world.genre_names.index("techno")
    ambient = world.genre_names.index("ambient")
    hours = {techno: [], ambient: []}
    for _, track, kind, at in world.events:
        genre = world.track_genre(track)
        if kind == "play" and genre in hours:
            hours[genre].append(at.hour)
    night = {g: np.mean([h < 4 or h >= 22 for h in hs]) for g, hs in hours.items()}
    assert night[techno] > night[ambient]


def test_playlists_are_coherent_runs(world):
    coherence = []
    for _, name, _, tracks in world.playlists:
        assert name
        genres = Counter(world.track_genre(t) for t in tracks)
        coherence.append(genres.most_common(1)[0][1] / len(tracks))
    assert np.mean(coherence) > 0.5

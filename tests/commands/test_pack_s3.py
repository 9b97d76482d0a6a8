"""A pack in an S3-compatible bucket (moto's server on 127.0.0.1, over TLS, started and stopped
here): packed there, trained from there by index and streamed, resumed mid-epoch from there, through
a network cut mid-epoch; missing credentials, bucket or pack are one error line each. The endpoint
and credentials reach fishbear only as the AWS settings (environment variables)."""

from __future__ import annotations

import json

import pytest

from fishbear.pack import main as pack_main
from fishbear.train import train
from tests.conftest import TINY, compose_train, one_error
from tests.s3_server import BUCKET, S3Server

PACKABLE = [o for o in TINY if o.startswith("data.source.")]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    started = S3Server(tmp_path_factory.mktemp("s3"))
    started.client().create_bucket(Bucket=BUCKET)
    yield started
    started.stop()


@pytest.fixture
def s3(server, monkeypatch, tmp_path):
    for key, value in {**server.env, "FISHBEAR_CACHE": str(tmp_path / "cache")}.items():
        monkeypatch.setenv(key, value)
    return server


def _objects(server, prefix: str) -> list[str]:
    listed = server.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_a_pack_in_a_bucket_trains_as_its_folder_does_and_is_not_written_twice(s3, tmp_path, capsys):
    url = f"s3://{BUCKET}/shapes-by-index"
    index = pack_main([f"out={url}", *PACKABLE])
    assert f"Train from it with data.root={url}" in capsys.readouterr().out
    keys = _objects(s3, "shapes-by-index/")
    assert "shapes-by-index/fishbear-pack.json" in keys
    shards = {f"shapes-by-index/{split}/{part}/index.json" for split in index["splits"] for part in ("images", "labels")}
    assert shards <= set(keys)
    stored = json.loads(s3.client().get_object(Bucket=BUCKET, Key="shapes-by-index/fishbear-pack.json")["Body"].read())
    assert stored["complete"] is True and stored["splits"] == index["splits"]

    pack_main([f"out={url}", *PACKABLE])  # the same pack again: kept as it is
    assert "holds this pack already" in capsys.readouterr().out and _objects(s3, "shapes-by-index/") == keys

    # a pack stopped while writing its test split: the same command completes it, the other splits kept
    client = s3.client()
    etags = {k: client.head_object(Bucket=BUCKET, Key=k)["ETag"] for k in keys if "/train/" in k}
    client.put_object(Bucket=BUCKET, Key="shapes-by-index/fishbear-pack.json",
                      Body=json.dumps({**stored, "complete": False}).encode())
    client.delete_object(Bucket=BUCKET, Key="shapes-by-index/test/images/index.json")
    pack_main([f"out={url}", *PACKABLE])
    assert _objects(s3, "shapes-by-index/") == keys
    assert {k: client.head_object(Bucket=BUCKET, Key=k)["ETag"] for k in etags} == etags
    assert json.loads(client.get_object(Bucket=BUCKET, Key="shapes-by-index/fishbear-pack.json")["Body"].read())["complete"]

    folder = train(compose_train([*TINY, "logger=none", "seed=3"], tmp_path / "from_folder"))
    packed = train(compose_train([*TINY, "logger=none", "seed=3", f"data.root={url}"], tmp_path / "from_bucket"))
    assert packed["data"]["root"] == url and packed["data"]["sizes"] == folder["data"]["sizes"]
    for name, value in folder["metrics"].items():  # the same pixels, labels and order: the same seeded run
        assert packed["metrics"][name] == pytest.approx(value, abs=1e-5), name
    assert list((tmp_path / "cache" / "packs").iterdir()), "the shards are cached under FISHBEAR_CACHE"


def _streamed(url: str, record, cut_seconds: float) -> list[str]:
    """A streamed run from ``url`` in batches of 4, recording each batch's items; the relay to the
    bucket is cut for ``cut_seconds`` as the epoch starts (the pack's index and labels read, no
    picture's shard fetched yet) and restored."""
    return [*TINY, "logger=none", f"data.root={url}", "data.stream=true", "data.batch_size=4",
            "+callbacks.last_checkpoint.every_n_train_steps=2",
            "+callbacks.record._target_=tests.crashes.RecordIndices", f"+callbacks.record.path={record}",
            "+callbacks.cut._target_=tests.s3_server.CutAtEpochStart", f"+callbacks.cut.seconds={cut_seconds}"]


@pytest.mark.slow
def test_a_run_streamed_from_a_bucket_rides_out_a_short_cut_and_resumes_mid_epoch(s3, tmp_path, monkeypatch):
    """Small shards (1 KB: a picture or two each). A cut of 0.3 s is retried by LitData's client;
    the run is killed after step 5 and resumed from the step-4 checkpoint in the bucket's cache:
    every picture seen exactly once."""
    from tests.crashes import killed

    url = f"s3://{BUCKET}/shapes-streamed"
    pack_main([f"out={url}", "chunk_bytes=1KB", *PACKABLE])
    record = tmp_path / "seen.txt"
    overrides = [*_streamed(url, record, 0.3), "+callbacks.crash._target_=tests.crashes.CrashAtStep",
                 "+callbacks.crash.step=5"]
    cuts, refused = s3.relay.cuts, s3.relay.refused
    killed(lambda: train(compose_train(overrides, tmp_path / "run")), monkeypatch)
    assert s3.relay.cuts == cuts + 1 and s3.relay.refused > refused, "the run asked for shards while the network was cut"
    assert len(record.read_text().splitlines()) == 5
    train(compose_train([*overrides, "ckpt_path=last"], tmp_path / "run"))
    batches = [[int(i) for i in line.split()] for line in record.read_text().splitlines()]
    seen = [i for batch in batches[:4] + batches[5:] for i in batch]  # batch 5 was lost with the kill
    assert sorted(seen) == list(range(32)), batches


@pytest.mark.slow
def test_a_long_network_cut_ends_the_run_with_one_line_and_the_same_command_then_runs(s3, tmp_path, capsys):
    """A cut longer than LitData's client retries (10 tries within about 2 s): the run stops with
    one error line that says how to resume (after LitData's own report of its prefetch thread, which
    it prints itself), never a short epoch; once the network is back the run completes."""
    from fishbear.engine.commandline import user_errors_exit

    url = f"s3://{BUCKET}/shapes-cut"
    pack_main([f"out={url}", "chunk_bytes=1KB", *PACKABLE])
    record = tmp_path / "seen.txt"
    run = user_errors_exit(lambda argv: train(compose_train(argv, tmp_path / "run")))
    with pytest.raises(SystemExit) as stop:
        run(_streamed(url, record, 8))
    err = capsys.readouterr().err
    fishbears = [line for line in err.splitlines() if line.startswith("error:")]
    assert stop.value.code == 2 and len(fishbears) == 1 and err.rstrip().splitlines()[-1] == fishbears[0], err
    before = err[:err.index(fishbears[0])]  # what LitData's prefetch thread printed, and nothing of fishbear's
    assert "Traceback" not in before or "[litdata] PrepareChunksThread CRASHED" in before, err
    assert "fishbear/" not in before.replace("fishbear-test/", ""), err
    line = fishbears[0]
    assert f"{url}/train/images: a shard of pictures could not be fetched mid-epoch" in line and "ckpt_path=last" in line
    assert not record.exists() or not record.read_text().strip()
    assert s3.relay.up.wait(15)
    train(compose_train(_streamed(url, record, 0), tmp_path / "run"))
    seen = [int(i) for line in record.read_text().splitlines() for i in line.split()]
    assert sorted(seen) == list(range(32))


def test_a_missing_bucket_pack_or_credentials_is_one_line(s3, tmp_path, monkeypatch, capsys):
    from fishbear.engine.commandline import user_errors_exit

    train_main = user_errors_exit(lambda argv: train(compose_train([*TINY, "logger=none", *argv], tmp_path / "run")))
    missing_pack = one_error(train_main, [f"data.root=s3://{BUCKET}/nothing-here"], capsys)
    assert f"s3://{BUCKET}/nothing-here holds no fishbear pack" in missing_pack and "fishbear pack data=shapes" in missing_pack
    missing_bucket = one_error(pack_main, ["out=s3://no-such-bucket/x", *PACKABLE], capsys)
    assert "s3://no-such-bucket/x" in missing_bucket and "the bucket does not exist" in missing_bucket
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    no_credentials = one_error(pack_main, [f"out=s3://{BUCKET}/y", *PACKABLE], capsys)
    assert "no credentials for the object store" in no_credentials and "AWS_ACCESS_KEY_ID" in no_credentials

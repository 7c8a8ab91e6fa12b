"""Where a study's Optuna study is stored: SQLite in the study folder unless a URL is given.

study.json names it (`optuna: {storage, study_name}`); `dr4sr.search.recording` writes the trials,
`dr4sr dashboard` and `dr4sr report` read them. No Ray here: reports read a study without it.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

DB_FILE = "optuna.db"
TUNE_ID = "tune_trial_id"  # user attr that maps a stored trial to its Tune trial (and its folder)


def default_url(out: str | Path) -> str:
    return f"sqlite:///{Path(out).resolve() / DB_FILE}"


def open_storage(url: str):
    """An RDBStorage; SQLite waits for a lock (the dashboard may read while the study writes)."""
    import optuna

    url = os.path.expandvars(url)  # e.g. postgresql://u:${PGPASSWORD}@host/db keeps secrets out of files
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


@dataclasses.dataclass(frozen=True)
class StudyDB:
    """Where a study is stored: `storage` as given (None = the folder's optuna.db) and its study name."""
    out: str
    name: str
    storage: str | None = None

    @property
    def url(self) -> str:
        return self.storage or default_url(self.out)

    def create(self, resume: bool, quiet: bool = True):
        """Create the stored study (maximize: objectives are validation metrics), or load it on resume.
        A new study never joins an existing one: two runs would mix their trials."""
        import optuna

        if quiet:
            optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created in RDB"

        storage = open_storage(self.url)
        exists = any(s.study_name == self.name for s in storage.get_all_studies())
        if exists and not resume:
            from dr4sr.errors import ConfigError

            raise ConfigError(f"{self.url} already holds the study {self.name!r}; pass --resume to continue "
                              f"it, or give a new --out (or --storage)")
        study = optuna.create_study(storage=storage, study_name=self.name, direction="maximize",
                                    load_if_exists=True)
        study.set_user_attr("study_folder", str(Path(self.out).resolve()))
        return study


def study_db(info: dict, out: str | Path) -> StudyDB:
    """The StudyDB that study.json names (studies written before it: the folder's default)."""
    db = info.get("optuna") or {}
    return StudyDB(str(Path(out).resolve()), db.get("study_name") or default_name(info["name"], out),
                   db.get("storage"))


def default_name(space_name: str, out: str | Path) -> str:
    return f"{space_name}@{Path(out).resolve().name}"  # unique enough to share one database


def resolve_db(out: str | Path, space_name: str, given: str | None, resume: bool) -> StudyDB:
    """Where the Optuna study is stored: on resume the one study.json names (another URL is an error),
    else `given` (--storage or search.storage), or SQLite in the study folder."""
    out = Path(out)
    info_path = out / "study.json"
    if resume and info_path.is_file():
        info = json.loads(info_path.read_text())
        if info.get("optuna"):
            db = study_db(info, out)
            if given and given != db.storage:
                from dr4sr.errors import ConfigError

                raise ConfigError(f"{out}: its Optuna study is stored in {db.url}; resume without --storage "
                                  f"(or with the same URL)")
            return db
    return StudyDB(str(out.resolve()), default_name(space_name, out), given)


def keep_db_info(out: Path, info: dict) -> None:
    """A resumed study's study.json gains where its Optuna study is stored and the run its trials share
    (older ones lack them)."""
    path = out / "study.json"
    old = json.loads(path.read_text())
    if not old.get("optuna") or old.get("track") != info["track"] or "run_constants" not in old:
        path.write_text(json.dumps({**old, "optuna": info["optuna"], "track": info["track"],
                                    "run_constants": old.get("run_constants", info["run_constants"])},
                                   indent=2, default=str))


def load_stored_study(info: dict, out: str | Path):
    import optuna

    db = study_db(info, out)
    return optuna.load_study(study_name=db.name, storage=open_storage(db.url))



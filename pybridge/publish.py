"""Writes to the Hub: repos, uploads, deletions, branches and tags; saving and pushing a model.

Every verb takes ``env=None, token=None`` (R passes ``hf_env()``) and resolves them with
:func:`pybridge.hub_call.write_settings`, and runs each request through
:func:`pybridge.hub_call.write` (the call state, Xet only for huggingface.co, statuses to errors).
A write always needs a token: without one the verb fails at once with ``AuthError`` and makes
no request.

Commits are not retried here (a lost answer would make a second commit); huggingface_hub retries
the LFS uploads itself. A commit returns ``{commit_oid, commit_url, pr_url, repo_id, revision}``.

:func:`push_model` writes a model folder (:mod:`pybridge.model_folder`) and uploads it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

from . import _args, errors, hub_call, model_folder
from .hub_call import hf_api
from .settings import Settings

# ---------------------------------------------------------------------------------------------
# Repo verbs


def create_repo(
    repo_id, repo_type="model", private=False, exist_ok=False, space_sdk=None, env=None, token=None
) -> dict:
    """Create a repo; ``{repo_id, repo_type, url}``. A Space needs ``space_sdk``."""
    ctx = _args.repo_context(repo_id, "main", repo_type)
    if repo_type == "space":
        _args.check_space_sdk(space_sdk, **ctx)
    s = hub_call.write_settings(env, token, ctx, "hub_create_repo")
    url = hub_call.write(
        lambda: hf_api(s).create_repo(
            repo_id,
            repo_type=repo_type,
            private=bool(private),
            exist_ok=bool(exist_ok),
            space_sdk=space_sdk if repo_type == "space" else None,
            token=s.token,
        ),
        s,
        ctx,
    )
    return {
        "repo_id": str(getattr(url, "repo_id", repo_id)),
        "repo_type": repo_type,
        "url": str(url),
    }


def upload_file(
    path,
    path_in_repo,
    repo_id,
    repo_type="model",
    revision="main",
    commit_message=None,
    commit_description=None,
    create_pr=False,
    parent_commit=None,
    quiet=False,
    env=None,
    token=None,
) -> dict:
    """Upload one local file as ``path_in_repo``; one commit."""
    ctx = _args.repo_context(
        repo_id, revision, repo_type, filename=path_in_repo, filename_argument="path_in_repo"
    )
    path = _local(path, "path", ctx, folder=False)
    s = hub_call.write_settings(env, token, ctx, "hub_upload_file")
    info = hub_call.write(
        lambda: hf_api(s).upload_file(
            path_or_fileobj=path,
            path_in_repo=path_in_repo,
            repo_id=repo_id,
            repo_type=repo_type,
            revision=revision,
            commit_message=commit_message or f"Upload {path_in_repo}",
            commit_description=commit_description,
            create_pr=bool(create_pr),
            parent_commit=parent_commit,
            token=s.token,
        ),
        s,
        ctx,
        quiet,
        commit=True,
    )
    return commit_result(info, ctx)


def upload_folder(
    folder,
    repo_id,
    repo_type="model",
    path_in_repo=None,
    allow_patterns=None,
    ignore_patterns=None,
    delete_patterns=None,
    commit_message=None,
    commit_description=None,
    revision="main",
    create_pr=False,
    parent_commit=None,
    quiet=False,
    env=None,
    token=None,
) -> dict:
    """Upload a local folder (filtered by glob patterns) in one commit; ``delete_patterns``
    removes matching remote files that the folder does not hold."""
    ctx = _args.repo_context(repo_id, revision, repo_type)
    folder = _local(folder, "folder", ctx, folder=True)
    if path_in_repo:
        _args.check_repo_path(path_in_repo, "path_in_repo", ctx, file=False)
    allow = _args.check_patterns(allow_patterns, "allow_patterns", ctx)
    ignore = _args.check_patterns(ignore_patterns, "ignore_patterns", ctx)
    delete = _args.check_patterns(delete_patterns, "delete_patterns", ctx)
    s = hub_call.write_settings(env, token, ctx, "hub_upload_folder")
    info = hub_call.write(
        lambda: hf_api(s).upload_folder(
            folder_path=folder,
            repo_id=repo_id,
            repo_type=repo_type,
            path_in_repo=path_in_repo,
            allow_patterns=allow,
            ignore_patterns=ignore,
            delete_patterns=delete,
            commit_message=commit_message or "Upload folder using hfbridge",
            commit_description=commit_description,
            revision=revision,
            create_pr=bool(create_pr),
            parent_commit=parent_commit,
            token=s.token,
        ),
        s,
        ctx,
        quiet,
        commit=True,
    )
    return commit_result(info, ctx)


def delete_file(
    path_in_repo,
    repo_id,
    repo_type="model",
    revision="main",
    commit_message=None,
    create_pr=False,
    parent_commit=None,
    env=None,
    token=None,
) -> dict:
    """Delete one file of the repo; one commit."""
    ctx = _args.repo_context(
        repo_id, revision, repo_type, filename=path_in_repo, filename_argument="path_in_repo"
    )
    s = hub_call.write_settings(env, token, ctx, "hub_delete_file")
    info = hub_call.write(
        lambda: hf_api(s).delete_file(
            path_in_repo,
            repo_id,
            repo_type=repo_type,
            revision=revision,
            commit_message=commit_message or f"Delete {path_in_repo}",
            create_pr=bool(create_pr),
            parent_commit=parent_commit,
            token=s.token,
        ),
        s,
        ctx,
        commit=True,
    )
    return commit_result(info, ctx)


def create_branch(
    repo_id, branch, revision=None, repo_type="model", exist_ok=False, env=None, token=None
) -> dict:
    """Create ``branch`` at ``revision`` (the head of main by default); ``{repo_id, branch,
    commit}``."""
    ctx = _args.repo_context(repo_id, revision or "main", repo_type)
    _args.check_ref_name(branch, "branch", ctx)
    s = hub_call.write_settings(env, token, ctx, "hub_create_branch")
    hub_call.write(
        lambda: hf_api(s).create_branch(
            repo_id,
            branch=branch,
            revision=revision,
            repo_type=repo_type,
            exist_ok=bool(exist_ok),
            token=s.token,
        ),
        s,
        ctx,
        exists=("branch", branch),
    )
    return {"repo_id": repo_id, "branch": branch, "commit": _head(s, ctx, branch)}


def create_tag(
    repo_id,
    tag,
    revision="main",
    tag_message=None,
    repo_type="model",
    exist_ok=False,
    env=None,
    token=None,
) -> dict:
    """Tag ``revision``; ``{repo_id, tag, commit}``."""
    ctx = _args.repo_context(repo_id, revision, repo_type)
    _args.check_ref_name(tag, "tag", ctx)
    s = hub_call.write_settings(env, token, ctx, "hub_create_tag")
    hub_call.write(
        lambda: hf_api(s).create_tag(
            repo_id,
            tag=tag,
            revision=revision,
            tag_message=tag_message,
            repo_type=repo_type,
            exist_ok=bool(exist_ok),
            token=s.token,
        ),
        s,
        ctx,
        exists=("tag", tag),
    )
    return {"repo_id": repo_id, "tag": tag, "commit": _head(s, ctx, tag)}


def whoami(env=None, token=None) -> dict:
    """The account of the token: ``{name, type, role, token_source, endpoint}``; never the token."""
    ctx = {"repo_id": "", "revision": "", "repo_type": "model"}
    s = hub_call.write_settings(env, token, ctx, "hub_whoami")
    info = hub_call.write(lambda: hf_api(s).whoami(token=s.token), s, ctx)
    role = ((info.get("auth") or {}).get("accessToken") or {}).get("role")
    return {
        "name": str(info.get("name") or ""),
        "type": str(info.get("type") or "user"),
        "role": str(role or "unknown"),
        "token_source": s.token_source,
        "endpoint": s.endpoint,
    }


# ---------------------------------------------------------------------------------------------
# Pushing a model


def push_model(
    repo_id,
    weights,
    config,
    tokenizer=None,
    card=None,
    folder=None,
    private=False,
    commit_message=None,
    revision="main",
    create_pr=False,
    max_shard_size=model_folder.DEFAULT_MAX_SHARD_SIZE,
    dtypes=None,
    default_dtype="float32",
    reversed=False,
    quiet=False,
    env=None,
    token=None,
) -> dict:
    """:func:`pybridge.model_folder.save_model` into ``folder`` (a temporary one by default),
    create the repo if needed, and upload the folder in one commit. Stale weight shards on the
    Hub are deleted."""
    ctx = _args.repo_context(repo_id, revision, "model")
    hub_call.write_settings(env, token, ctx, "hub_push_model")  # fail before saving, not after
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="hfbridge-push-"))
        model_folder.save_model(
            folder,
            weights,
            config,
            tokenizer=tokenizer,
            card=card,
            max_shard_size=max_shard_size,
            dtypes=dtypes,
            default_dtype=default_dtype,
            reversed=reversed,
            env=env,
            token=token,
        )
        create_repo(repo_id, "model", private=private, exist_ok=True, env=env, token=token)
        out = upload_folder(
            folder,
            repo_id,
            commit_message=commit_message or "Upload model",
            revision=revision,
            create_pr=create_pr,
            delete_patterns=model_folder.WEIGHT_FILES,
            quiet=quiet,
            env=env,
            token=token,
        )
    return out


# ---------------------------------------------------------------------------------------------
# Helpers


def commit_result(info, ctx) -> dict:
    """A commit as the verbs return it."""
    return {
        "commit_oid": str(info.oid),
        "commit_url": str(info.commit_url),
        "pr_url": str(info.pr_url) if info.pr_url else None,
        "repo_id": ctx["repo_id"],
        "revision": ctx["revision"],
    }


def _head(s: Settings, ctx, revision) -> str:
    info = hub_call.write(
        lambda: hf_api(s).repo_info(
            ctx["repo_id"], revision=revision, repo_type=ctx["repo_type"], token=s.token
        ),
        s,
        ctx,
    )
    return str(info.sha)


def _local(path, name, ctx, folder: bool) -> str:
    if not isinstance(path, str) or not path.strip():
        raise errors.InvalidArgumentError(
            f"{name} must be a local path.", argument=name, **_args.fields_of(ctx)
        )
    full = os.path.abspath(os.path.expanduser(path))
    ok = os.path.isdir(full) if folder else os.path.isfile(full)
    if not ok:
        what = "folder" if folder else "file"
        problem = f"is not a {what}" if os.path.exists(full) else "does not exist"
        raise errors.InvalidArgumentError(
            f"The local {what} '{path}' {problem}.",
            argument=name,
            path=path,
            **_args.fields_of(ctx),
        )
    return full

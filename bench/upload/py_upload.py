"""One Python upload: HfApi.upload_folder, timed around the call only (imports excluded)."""

import json
import sys
import time

import huggingface_hub
import huggingface_hub.utils

endpoint, token, folder, repo_id = sys.argv[1:5]
huggingface_hub.utils.disable_progress_bars()  # as R's quiet = TRUE
api = huggingface_hub.HfApi(endpoint=endpoint, token=token)
api.create_repo(repo_id, exist_ok=True)
start = time.perf_counter()
info = api.upload_folder(folder_path=folder, repo_id=repo_id, commit_message="bench")
print(json.dumps({"seconds": time.perf_counter() - start, "oid": info.oid}))

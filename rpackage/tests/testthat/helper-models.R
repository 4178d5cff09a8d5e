# The tiny task models of pybridge.fixtures.task_models, built offline once and published on the
# test mirror under their REPO_IDS; returns list(folders, ids).
task_model_fixtures <- function() {
  tm <- hfbridge:::pybridge_module("fixtures.task_models")
  folders <- tm$ensure()
  ids <- tm$REPO_IDS
  for (name in names(ids)) publish_repo(ids[[name]], folders[[name]])
  list(folders = folders, ids = ids)
}

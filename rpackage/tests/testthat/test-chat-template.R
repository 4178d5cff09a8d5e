# Chat templates on a tokenizer, and text generation on a conversation, against transformers
# called through reticulate on the same folder: the tiny chat fixture (hfbridge-tiny/chat),
# published on the test mirror.

chat_df <- data.frame(role = c("system", "user"),
                      content = c("You are a helpful assistant.", "What do you think?"),
                      stringsAsFactors = FALSE)
chat_list <- list(list(role = "system", content = "You are a helpful assistant."),
                  list(role = "user", content = "What do you think?"))
weather_tool <- list(type = "function", "function" = list(
  name = "get_weather", description = "The weather in a city.",
  parameters = list(type = "object", properties = list(city = list(type = "string")),
                    required = list("city"))
))

local_one_torch_thread <- function(env = parent.frame()) {
  torch <- hfbridge:::pybridge_module("models")$import_torch()
  before <- torch$get_num_threads()
  torch$set_num_threads(1L)
  withr::defer(torch$set_num_threads(before), envir = env)
}

py_chat_tokenizer <- function(folder) {
  reticulate::import("transformers")$AutoTokenizer$from_pretrained(folder)
}

test_that("apply_chat_template equals transformers' for data frames and lists", {
  local_hub()
  fx <- task_model_fixtures()
  tok <- tokenizer_from_pretrained(fx$ids$chat)
  ref <- py_chat_tokenizer(fx$folders$chat)
  for (gen in c(TRUE, FALSE)) {
    want <- ref$apply_chat_template(chat_list, add_generation_prompt = gen, tokenize = FALSE)
    want_ids <- as.integer(unlist(ref$apply_chat_template(
      chat_list, add_generation_prompt = gen, return_dict = FALSE)))
    expect_identical(tok$apply_chat_template(chat_df, add_generation_prompt = gen), want)
    expect_identical(tok$apply_chat_template(chat_list, add_generation_prompt = gen), want)
    ids <- tok$apply_chat_template(chat_df, add_generation_prompt = gen, tokenize = TRUE)
    expect_identical(ids, want_ids)
    expect_identical(tok$encode(want, add_special_tokens = FALSE)$ids, want_ids)
  }
  expect_identical(tok$apply_chat_template(chat_df),
                   ref$apply_chat_template(chat_list, add_generation_prompt = TRUE,
                                           tokenize = FALSE))
  expect_match(tok$apply_chat_template(chat_df), "<|im_start|>assistant\n$", fixed = FALSE)
  # a factor column is its labels
  expect_identical(tok$apply_chat_template(transform(chat_df, role = factor(role))),
                   tok$apply_chat_template(chat_df))
})

test_that("tools reach the template as in transformers, as lists or JSON text", {
  local_hub()
  fx <- task_model_fixtures()
  tok <- tokenizer_from_pretrained(fx$ids$chat)
  ref <- py_chat_tokenizer(fx$folders$chat)
  want <- ref$apply_chat_template(chat_list, tools = list(weather_tool),
                                  add_generation_prompt = TRUE, tokenize = FALSE)
  expect_match(want, "get_weather", fixed = TRUE)
  expect_identical(tok$apply_chat_template(chat_df, tools = list(weather_tool)), want)
  json <- jsonlite::toJSON(list(weather_tool), auto_unbox = TRUE)
  expect_identical(tok$apply_chat_template(chat_df, tools = json), want)
  want_ids <- as.integer(unlist(ref$apply_chat_template(
    chat_list, tools = list(weather_tool), add_generation_prompt = TRUE, return_dict = FALSE)))
  expect_identical(tok$apply_chat_template(chat_df, tokenize = TRUE, tools = list(weather_tool)),
                   want_ids)
  # an assistant's tool call and the tool's answer, as messages with more fields
  turns <- c(chat_list, list(
    list(role = "assistant", tool_calls = list(list(
      type = "function", "function" = list(name = "get_weather",
                                            arguments = list(city = "Oslo"))))),
    list(role = "tool", content = "sunny")))
  expect_identical(tok$apply_chat_template(turns, tools = list(weather_tool)),
                   ref$apply_chat_template(turns, tools = list(weather_tool),
                                           add_generation_prompt = TRUE, tokenize = FALSE))
})

test_that("a tokenizer without a chat template is a classed error", {
  local_hub()
  fx <- task_model_fixtures()
  gpt2 <- tokenizer_from_pretrained(fx$ids$gpt2)
  err <- expect_error(gpt2$apply_chat_template(chat_df), class = "hfbridge_error_no_chat_template")
  expect_s3_class(err, "hfbridge_error")
  expect_match(conditionMessage(err), "has no chat template")
  alone <- tempfile(fileext = ".json")
  tokenizer_from_pretrained(fx$ids$chat)$save(alone)
  expect_error(tokenizer_from_file(alone)$apply_chat_template(chat_df),
               class = "hfbridge_error_no_chat_template")
  trained <- tokenizer_train(c("a few words", "and a few more"), type = "bpe", vocab_size = 300)
  expect_error(trained$apply_chat_template(chat_df), "tokenizer_from_pretrained",
               class = "hfbridge_error_no_chat_template")
})

test_that("bad messages are refused with invalid_argument, naming the message", {
  local_hub()
  fx <- task_model_fixtures()
  tok <- tokenizer_from_pretrained(fx$ids$chat)
  bad <- list(
    list(chat_df[0, ], "messages is empty"),
    list(data.frame(content = "Hi"), "Message 1 has no role"),
    list(data.frame(role = c("user", "assistant"), content = c("Hi", NA)),
         "Message 2 \\(assistant\\) has no content"),
    list(list(list(role = "user", content = c("a", "b"))), "content must be a string"),
    list(list(list(role = "user", content = 3)), "content must be a string, not a number"),
    list(list(role = "user", content = "Hi"), "messages is one message"),
    list("Hi", "messages must be a data frame"),
    list(list(list(role = "user", content = list("a", NA))), "Message 1 holds NA")
  )
  for (case in bad) {
    err <- expect_error(tok$apply_chat_template(case[[1]]), case[[2]],
                        class = "hfbridge_error_invalid_argument")
    expect_identical(err$argument, "messages")
  }
  expect_error(tok$apply_chat_template(chat_df, tools = list("get_weather")), "tools must be",
               class = "hfbridge_error_invalid_argument")
  expect_error(tok$apply_chat_template(chat_df, tokenize = NA),
               class = "hfbridge_error_invalid_argument")
})

test_that("text-generation on a conversation equals transformers' pipeline", {
  local_hub()
  local_one_torch_thread()
  fx <- task_model_fixtures()
  gen <- pipeline("text-generation", fx$ids$chat, max_new_tokens = 40)
  ref <- reticulate::import("transformers")$pipeline("text-generation", model = fx$folders$chat)
  for (seed in c(3L, 4L)) {
    res <- gen(chat_df, seed = seed)
    expect_s3_class(res, "data.frame")
    expect_named(res, c("generated_text", "finish_reason", "prompt_tokens", "completion_tokens"))
    reticulate::import("transformers")$set_seed(seed)
    want <- ref(chat_list, max_new_tokens = 40L)[[1]]$generated_text
    expect_identical(res$generated_text, want[[length(want)]]$content)
    expect_identical(gen(chat_list, seed = seed), res)       # a list of messages
    expect_identical(gen(messages = chat_df, seed = seed), res)  # messages =
  }
  greedy <- gen(chat_df, do_sample = FALSE)
  want <- ref(chat_list, max_new_tokens = 40L, do_sample = FALSE)[[1]]$generated_text
  expect_identical(greedy$generated_text, want[[length(want)]]$content)
  ids <- tokenizer_from_pretrained(fx$ids$chat)$apply_chat_template(chat_df, tokenize = TRUE)
  expect_identical(greedy$prompt_tokens, length(ids))
  expect_identical(greedy$finish_reason, "stop")
  expect_true(greedy$completion_tokens > 0L)
  short <- gen(chat_df, do_sample = FALSE, max_new_tokens = 3)
  expect_identical(short$finish_reason, "length")
  expect_identical(short$completion_tokens, 3L)
  # texts still work as before
  expect_named(gen("Hello", max_new_tokens = 2, do_sample = FALSE),
               c("text_id", "prompt", "generated_text"))
})

test_that("text-generation on a conversation gives a row per sequence, as transformers", {
  local_hub()
  local_one_torch_thread()
  fx <- task_model_fixtures()
  gen <- pipeline("text-generation", fx$ids$chat, max_new_tokens = 12)
  res <- gen(chat_df, num_return_sequences = 2, return_full_text = FALSE, seed = 3)
  transformers <- reticulate::import("transformers")
  ref <- transformers$pipeline("text-generation", model = fx$folders$chat)
  transformers$set_seed(3L)
  want <- ref(chat_list, max_new_tokens = 12L, num_return_sequences = 2L,
              return_full_text = FALSE)
  expect_identical(res$generated_text, vapply(want, `[[`, "", "generated_text"))
  expect_identical(nrow(res), 2L)
  expect_error(gen(chat_df, return_full_text = TRUE), "return_full_text must be FALSE",
               class = "hfbridge_error_invalid_argument")
})

test_that("text-generation on a conversation refuses what does not apply", {
  local_hub()
  fx <- task_model_fixtures()
  gen <- pipeline("text-generation", fx$ids$chat)
  expect_error(gen(chat_df, prefix = "x"), "has no argument 'prefix'",
               class = "hfbridge_error_invalid_argument")
  expect_error(gen(chat_df, messages = chat_df), "once",
               class = "hfbridge_error_invalid_argument")
  expect_error(gen(chat_df, chunk_size = 2), class = "hfbridge_error_invalid_argument")
  expect_error(gen(data.frame(role = "user")), "has no content",
               class = "hfbridge_error_invalid_argument")
  expect_error(pipeline("text-generation", fx$ids$gpt2)(chat_df, max_new_tokens = 2),
               class = "hfbridge_error_no_chat_template")
})

test_that("$chat_structured() with a schema written in R equals the constrained Python chat", {
  local_hub()
  local_one_torch_thread()
  fx <- task_model_fixtures()
  # R writes whole numbers as doubles (minItems = 2): JSON schema wants integers there.
  schema <- list(
    type = "array", minItems = 2, maxItems = 3,
    items = list(type = "object", additionalProperties = FALSE, required = list("dish", "stars"),
                 properties = list(dish = list(type = "string", enum = list("soup", "cake")),
                                   stars = list(type = "integer", minimum = 1, maximum = 5))))
  chat <- hf_chat(fx$ids$chat, max_tokens = 200)
  rated <- chat$chat_structured("Rate the dishes.", schema = schema)
  expect_s3_class(rated, "data.frame")
  expect_named(rated, c("dish", "stars"))
  expect_true(nrow(rated) %in% 2:3)
  expect_true(all(rated$dish %in% c("soup", "cake")))
  expect_true(all(rated$stars %in% 1:5))
  # pybridge's chat from Python, with the schema written as Python writes it
  py_schema <- reticulate::py_eval(paste0(
    "{'type': 'array', 'minItems': 2, 'maxItems': 3, 'items': {'type': 'object', ",
    "'additionalProperties': False, 'required': ['dish', 'stars'], 'properties': {",
    "'dish': {'type': 'string', 'enum': ['soup', 'cake']}, ",
    "'stars': {'type': 'integer', 'minimum': 1, 'maximum': 5}}}}"))
  py_chat <- hfbridge:::pybridge_module("chat")$Chat(
    list(list(local = TRUE, model = fx$ids$chat)), params = list(max_tokens = 200L),
    env = hfbridge:::hf_env())
  want <- py_chat$structured("Rate the dishes.", py_schema)$value
  expect_identical(rated$dish, unlist(want$dish))
  expect_identical(rated$stars, unlist(want$stars))
})

test_that("a local model's tool call runs the R tool, forced by tool_choice as the server does", {
  local_hub()
  local_one_torch_thread()
  fx <- task_model_fixtures()
  asked <- character()
  weather <- hf_tool(function(city) {
    asked <<- c(asked, city)
    paste("Sunny in", city)
  }, "get_weather", "The weather in a city.",
  list(type = "object", required = list("city"), additionalProperties = FALSE,
       properties = list(city = list(type = "string", enum = list("Paris", "Oslo", "Lima")))))
  chat <- hf_chat(fx$ids$chat, max_tokens = 128, tool_choice = "required")
  chat$register_tool(weather)
  reply <- chat$chat("Weather in Paris?")
  expect_s3_class(reply, "hfbridge_reply")
  expect_length(asked, 1L)
  expect_true(asked %in% c("Paris", "Oslo", "Lima"))
  turns <- chat$get_turns()
  expect_identical(turns$role, c("user", "assistant", "tool", "assistant"))
  expect_identical(turns$tool_calls[[2]], sprintf('get_weather({"city": "%s"})', asked))
  expect_identical(turns$content[[3]], paste("Sunny in", asked))
  expect_identical(turns$content[[4]], as.character(unclass(reply)))

  # hfbridge's server, asked through InferenceClient with the tool named, calls it alike
  remote <- local({
    srv <- hf_serve(c(chat = fx$ids$chat))
    hf_chat(endpoint = srv, max_tokens = 128, temperature = 0)
  })
  invisible(gc())  # the chat keeps its server running: no other handle of it is left
  on.exit({
    rm(remote, streamed)
    invisible(gc())  # the last handles go: processx stops the server
  })
  remote$register_tool(weather)
  remote$chat("Weather in Paris?", tool_choice = "get_weather")
  expect_identical(asked[[2]], asked[[1]])
  expect_identical(remote$get_turns()$tool_calls[[2]], turns$tool_calls[[2]])

  # streamed, locally and from the server: the same call, and none of its text in the chunks
  for (streamed in list(hf_chat(fx$ids$chat, max_tokens = 128), remote$clone())) {
    streamed$register_tool(weather)
    seen <- character()
    reply <- streamed$stream("Weather in Paris?", tool_choice = "get_weather",
                             callback = function(chunk) seen <<- c(seen, chunk))
    expect_identical(asked[[length(asked)]], asked[[1]])
    last <- streamed$get_turns()
    n <- nrow(last)
    expect_identical(last$role[n - 2:0], c("assistant", "tool", "assistant"))
    expect_identical(last$tool_calls[[n - 2]], turns$tool_calls[[2]])
    expect_identical(paste(seen, collapse = ""), as.character(unclass(reply)))
    expect_identical(last$content[[n]], as.character(unclass(reply)))
    expect_false(any(grepl("tool_call|get_weather", seen)))
  }
  expect_length(asked, 4L)

  expect_error(chat$chat("And Oslo?", tool_choice = "get_time"),
               class = "hfbridge_error_invalid_argument")
  expect_error(hf_chat(fx$ids$chat, tool_choice = "required")$chat("Hello"),
               "`tools` is empty", class = "hfbridge_error_invalid_argument")
  expect_identical(nrow(chat$get_turns()), 4L)  # a refused turn leaves the turns as they were
})

test_that("a local chat's model is listed by pipeline_cache_info() and freed by its clear", {
  fx <- task_model_fixtures()
  # a fresh session, where hf_chat() is the first to load a model
  out <- callr::r(function(folder) {
    library(hfbridge)
    chat <- hf_chat(folder, max_tokens = 2)
    chat$chat("Hi")
    listed <- pipeline_cache_info()
    freed <- pipeline_cache_clear()
    list(listed = listed, freed = freed, again = nchar(chat$chat("Again")) >= 0,
         relisted = nrow(pipeline_cache_info()))
  }, list(fx$folders$chat))
  expect_identical(out$listed$kind, "pipeline:text-generation")
  expect_identical(out$listed$model, fx$folders$chat)
  expect_identical(out$freed, 1L)
  expect_true(out$again)
  expect_identical(out$relisted, 1L)
})

test_that("a conversation past GPT-2's positions is refused, in a chat and a pipeline", {
  fx <- task_model_fixtures()
  folder <- file.path(withr::local_tempdir(), "gpt2chat")
  dir.create(folder)
  file.copy(list.files(fx$folders$gpt2, full.names = TRUE), folder)
  writeLines(paste0("{%- for m in messages %}{{ m.role + ': ' + m.content + '\\n' }}",
                    "{%- endfor %}{%- if add_generation_prompt %}{{ 'assistant:' }}{%- endif %}"),
             file.path(folder, "chat_template.jinja"))
  long <- strrep("word ", 150)  # GPT-2's fixture has 128 positions
  chat <- hf_chat(folder, max_tokens = 20)
  chat$chat("Hello")
  expect_error(chat$chat(long), "longest message is message 3, user",
               class = "hfbridge_error_invalid_argument")
  expect_error(chat$stream(long), "more than the 128 tokens",
               class = "hfbridge_error_invalid_argument")
  expect_identical(nrow(chat$get_turns()), 2L)
  gen <- pipeline("text-generation", folder)
  expect_error(gen(data.frame(role = "user", content = long), max_new_tokens = 5),
               "message 1, user", class = "hfbridge_error_invalid_argument")
})

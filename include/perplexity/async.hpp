/// @file
/// The umbrella header: include this to get everything.
#pragma once

#include <perplexity/backoff.hpp>
#include <perplexity/chat.hpp>
#include <perplexity/client.hpp>
#include <perplexity/environment.hpp>
#include <perplexity/error.hpp>
#include <perplexity/events.hpp>
#include <perplexity/expected.hpp>
#include <perplexity/idempotency.hpp>
#include <perplexity/job.hpp>
#include <perplexity/json.hpp>
#include <perplexity/ledger.hpp>
#include <perplexity/memory_ledger.hpp>
#include <perplexity/options.hpp>
#include <perplexity/pacing.hpp>
#include <perplexity/poll.hpp>
#include <perplexity/response.hpp>
#include <perplexity/response_request.hpp>
#include <perplexity/resume.hpp>
#include <perplexity/retry.hpp>
#include <perplexity/version.hpp>
#include <perplexity/wait.hpp>

/// @namespace perplexity
/// Everything public in perplexity-async. `perplexity::detail` holds the internals: not part of the
/// API, and free to change between releases.

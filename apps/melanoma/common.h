// Everything the melanoma app's subcommands share, one include: process settings (runtime.h), a
// model as a file (model_file.h), a model over a data set (inference.h), methods by name
// (methods.h), and the files it writes and reads (files.h).
#pragma once
#include "files.h"
#include "inference.h"
#include "methods.h"
#include "model_file.h"
#include "runtime.h"

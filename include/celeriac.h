/*
 * celeriac.h - umbrella header of libceleriac, a distributed task queue
 * that speaks Celery's message protocol v2.
 */
#ifndef CELERIAC_H
#define CELERIAC_H

#include "celeriac/common.h"
#include "celeriac/error.h"
#include "celeriac/config.h"
#include "celeriac/state.h"
#include "celeriac/task.h"
#include "celeriac/value.h"
#include "celeriac/client.h"
#include "celeriac/canvas.h"
#include "celeriac/dead_letters.h"
#include "celeriac/control.h"
#include "celeriac/worker.h"
#include "celeriac/schedule.h"
#include "celeriac/beat.h"

#endif

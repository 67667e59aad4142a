"""The broker keeps a long-running task with its worker: with late acknowledgement, Redis hands
an unacknowledged task to another worker only after the visibility timeout, and a training
can run for more than Kombu's default hour."""

import time
import uuid

from tunedin.celery import app

TWO_HOURS = 2 * 3600


def test_a_task_reserved_two_hours_ago_is_not_handed_out_again():
    queue_name = f"test-visibility-{uuid.uuid4().hex}"
    with app.connection_for_write() as connection:
        queue = connection.SimpleQueue(queue_name)
        try:
            queue.put({"task": "mltasks.tasks.train_continuation"})
            message = queue.get(timeout=5)  # reserved by this consumer, not acknowledged
            channel = queue.channel
            # As if the worker had been training since two hours ago.
            channel.client.zadd(
                channel.unacked_index_key, {message.delivery_tag: time.time() - TWO_HOURS}
            )
            channel.qos.restore_visible(num=1000, interval=1)
            # Still the first worker's, not back in the queue's list.
            assert channel.client.llen(queue_name) == 0
            # Past the configured timeout, a killed worker's task does come back.
            channel.client.zadd(
                channel.unacked_index_key,
                {message.delivery_tag: time.time() - channel.visibility_timeout - 60},
            )
            channel.qos.restore_visible(num=1000, interval=1)
            assert channel.client.llen(queue_name) == 1
        finally:
            queue.channel.client.delete(queue_name)
            queue.close()

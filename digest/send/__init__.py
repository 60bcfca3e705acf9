"""send: an issue's variants → every recipient, exactly once, through a transport.

Delivery rows, grouped into batches, are written before their batch is sent; batches are
leased by a worker, handed to the transport and marked, and running again resumes. By what
each module does:

- :mod:`~digest.send.worker`: a worker's part of a send (:func:`send_issue`): who it is, the
  recording thread, the report;
- :mod:`~digest.send.sender`: leasing batches, handing them over (several requests in flight
  when the transport allows it), recording their outcomes;
- the ledger: :mod:`~digest.send.ledger` (its model and states), :mod:`~digest.send.recording`
  (an issue's batches and deliveries), :mod:`~digest.send.leases` (leases and outcomes),
  :mod:`~digest.send.reporting` (what it says of a send);
- :mod:`~digest.send.batch` and :mod:`~digest.send.message`: a batch as transports receive
  it, and the email each recipient gets;
- :mod:`~digest.send.transport`: what a transport does; :mod:`~digest.send.sendgrid`,
  :mod:`~digest.send.smtp` and :mod:`~digest.send.outbox` do it.
"""

// Shows each <time datetime="..."> of the page in the viewer's own time zone
// and language; the server wrote UTC, which stays as the tooltip (and as the
// text without JavaScript).
(function () {
  "use strict";
  var format = { dateStyle: "medium", timeStyle: "short" };
  var times = document.querySelectorAll("time[datetime]");
  for (var i = 0; i < times.length; i++) {
    var at = new Date(times[i].getAttribute("datetime"));
    if (isNaN(at.getTime())) { continue; }
    times[i].title = times[i].textContent;
    try {
      times[i].textContent = at.toLocaleString(undefined, format);
    } catch (e) {
      times[i].textContent = at.toLocaleString();
    }
  }
})();

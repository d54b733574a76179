// Progressive enhancement only: every page works without JavaScript.

// GOV.UK Frontend's components, when its assets are installed (./dev installs them).
import('/govuk/govuk-frontend.min.js')
  .then((govuk) => govuk.initAll())
  .catch(() => {})

for (const el of document.querySelectorAll('[data-needs-js]')) {
  el.hidden = false
}

// "Select all" on the review queue.
for (const box of document.querySelectorAll('[data-select-all]')) {
  box.addEventListener('change', () => {
    for (const item of document.querySelectorAll(box.dataset.selectAll)) {
      item.checked = box.checked
    }
  })
}
